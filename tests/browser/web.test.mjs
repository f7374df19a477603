// SPDX-License-Identifier: MIT
// The web terminal page (docs/web.md) in a real headless Chromium against a real server, agent
// and shells: sign in, see the agent online with stats, open a terminal and read back what it
// printed, a split that is another shell, resize followed by `stty size`, a dropped socket that
// reconnects with every line exactly once, a 50 MB flood that does not freeze the tab, the MFA
// prompt, and the agent killed (offline) and brought back; a file uploaded through the Upload
// button and downloaded back through the Download button. Then the management views: an agent's
// charts and sessions (attached to from another tab's session, and ended), a recording played to
// the end, tokens made and revoked (and refused once revoked), a machine added by running the
// page's one-liner for real, the audit table filtered, the keyboard (shortcuts, the help
// overlay, every control reachable), the warning before the sign-in's end, and axe-core on every
// view. Each step saves a screenshot into --artifacts; a failing step also saves one and prints
// the page's console and the server logs.
//
//   node web.test.mjs --server BIN --agent BIN [--artifacts DIR]
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

import {
  check, fail, launchChromium, loadPlaywright, log, parseArgs, run, sleep, startSystem, tickProbe,
  waitFor,
} from './harness.mjs';

const args = parseArgs(process.argv.slice(2));
const artifacts = args.artifacts || path.join(os.tmpdir(), 'rexec-web-artifacts');
fs.mkdirSync(artifacts, { recursive: true });
for (const f of fs.readdirSync(artifacts)) {  // screenshots of an earlier run would mislead
  if (f.endsWith('.png')) fs.rmSync(path.join(artifacts, f));
}
const pw = await loadPlaywright();

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) of a base32 secret for time step `step`.
function totp(secretBase32, step) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secretBase32.replace(/=+$/, '')) {
    bits += alphabet.indexOf(c.toUpperCase()).toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = crypto.createHmac('sha1', key).update(counter).digest();
  const at = mac[mac.length - 1] & 0xf;
  const n = (mac.readUInt32BE(at) & 0x7fffffff) % 1e6;
  return String(n).padStart(6, '0');
}

// HS256 JWT, as the server signs its web sessions (the test knows the server's secret).
const kJwtSecret = 'browser-test-secret-0123456789abcdef';
function makeJwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${crypto.createHmac('sha256', kJwtSecret).update(body).digest('base64url')}`;
}

// The agent binary, offered at /downloads/ for the install one-liner of "Add a machine".
const downloads = fs.mkdtempSync(path.join(os.tmpdir(), 'rexec-browser-dl-'));
const tempDirs = [downloads];  // removed at the end
const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch] || process.arch;
// Without its debug information (the test builds carry 50 MB of it): the installer downloads
// and checks a few MB, as from a release build.
const offered = path.join(downloads, `rexec-agent-linux-${arch}`);
if (spawnSync('strip', ['--strip-debug', '-o', offered, args.agent]).status !== 0) {
  fs.copyFileSync(args.agent, offered);
}

// Three sessions per agent, so the test can reach the limit and see the page say so; one-minute web sessions, so the test sees the page renew its JWT; stats every second
// for the charts.
const sys = await startSystem({
  serverBin: args.server,
  agentBin: args.agent,
  serverArgs: ['--max-sessions-per-agent', '3', '--web-session', '1m', '--downloads-dir', downloads],
  agentEnv: { REXEC_STATS_INTERVAL_MS: '1000' },
});
const browser = await launchChromium(pw);
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: sys.url });
const page = await context.newPage();
const consoleLines = [];
page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));

let stepNo = 0;
async function step(name, fn) {
  stepNo += 1;
  const slug = `${String(stepNo).padStart(2, '0')}-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  log(`step ${stepNo}: ${name}`);
  try {
    await fn();
  } catch (e) {
    await page.screenshot({ path: path.join(artifacts, `${slug}-FAILED.png`) }).catch(() => {});
    log(`FAILED: ${name}: ${e.message}`);
    log('---- page console');
    for (const l of consoleLines) process.stderr.write(`  ${l}\n`);
    sys.dumpLogs();
    throw e;
  }
  await page.screenshot({ path: path.join(artifacts, `${slug}.png`) });
}

const paneText = (i) => page.evaluate((k) => window.rexec.paneText(k), i);
const paneState = (i) => page.evaluate((k) => window.rexec.state.panes[k].el.dataset.state, i);

async function waitText(i, re, what, timeoutMs = 15000) {
  return waitFor(`pane ${i}: ${what}`, async () => re.exec(await paneText(i)), timeoutMs);
}

// Types into pane `i` with real key events, as a person would.
async function typeIn(i, text) {
  await page.evaluate((k) => window.rexec.state.panes[k].term.focus(), i);
  await page.keyboard.type(text);
}

let ok = false;
let firstJwt = '';
try {
  await step('the page loads with a strict content security policy', async () => {
    const response = await page.goto(`${sys.url}/`);
    const h = response.headers();
    check(response.status() === 200, 'GET / is 200');
    check(/script-src 'self'/.test(h['content-security-policy'] || '') &&
          /frame-ancestors 'none'/.test(h['content-security-policy']),
      `CSP allows only this origin's scripts and no framing: ${h['content-security-policy']}`);
    check(h['x-content-type-options'] === 'nosniff' && h['x-frame-options'] === 'DENY',
      'nosniff and DENY framing');
    await page.waitForSelector('#sign-in-form', { state: 'visible' });
  });

  await step('a wrong token is refused with a clear message', async () => {
    await page.fill('#token', `rexec_${'0'.repeat(64)}`);
    await page.click('#sign-in-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('sign-in-error').textContent !== '');
    const text = await page.textContent('#sign-in-error');
    check(/not valid/.test(text), `the page says: "${text}"`);
  });

  await step('sign in keeps only a short-lived JWT in this tab', async () => {
    await page.fill('#token', sys.token);
    await page.click('#sign-in-form button[type=submit]');
    await page.waitForSelector('#app', { state: 'visible' });
    check((await page.textContent('#who')).startsWith('alice'), 'signed in as alice');
    const stored = await page.evaluate(() => ({
      session: JSON.stringify(sessionStorage), local: JSON.stringify(localStorage),
    }));
    check(!stored.session.includes(sys.token) && !stored.local.includes(sys.token),
      'the API token is in neither sessionStorage nor localStorage');
    check(stored.local === '{}', 'localStorage is empty');
    const saved = JSON.parse(JSON.parse(stored.session)['rexec.session']);
    const claims = JSON.parse(Buffer.from(saved.token.split('.')[1], 'base64url').toString());
    const life = claims.exp - Math.floor(Date.now() / 1000);
    check(life > 0 && life <= 60, `the session JWT expires as --web-session says (${life} s)`);
    firstJwt = saved.token;
  });

  const agentSel = `.agent[data-agent-id="${sys.agentId}"]`;
  await step('the agent is listed online with live stats', async () => {
    await page.waitForSelector(`${agentSel}[data-status="online"]`);
    await page.waitForFunction((sel) => /cpu \d+%/.test(document.querySelector(`${sel} .stats`).textContent),
      agentSel, { timeout: 20000 });
    log(`stats: ${(await page.textContent(`${agentSel} .stats`)).replace(/\n/g, ' | ')}`);
  });

  let mainPid = '';
  await step('a terminal on main echoes what was typed', async () => {
    await page.click(`${agentSel} .open`);
    await page.waitForSelector('.pane[data-session="main"][data-state="open"]');
    await typeIn(0, 'echo hello-$RANDOM\n');
    const m = await waitText(0, /^hello-(\d+)\s*$/m, 'hello-<number>');
    log(`read back: ${m[0].trim()}`);
    await typeIn(0, 'echo pid-$$\n');
    mainPid = (await waitText(0, /^pid-(\d+)\s*$/m, 'the shell pid'))[1];
  });

  await step('a split is another shell', async () => {
    await page.click('#split');
    await page.waitForSelector('.pane[data-session^="split-"][data-state="open"]');
    check((await page.locator('.pane').count()) === 2, 'two panes');
    await typeIn(1, 'echo pid-$$\n');
    const splitPid = (await waitText(1, /^pid-(\d+)\s*$/m, 'the split shell pid'))[1];
    check(splitPid !== mainPid, `the split runs its own shell (pid ${splitPid} vs ${mainPid})`);
  });

  await step('resizing the window resizes the terminals (stty size)', async () => {
    const sizes = [];
    for (const [width, height] of [[900, 560], [1400, 900]]) {
      await page.setViewportSize({ width, height });
      // The fit follows on the next layout; wait until xterm.js has the new geometry.
      await sleep(300);
      const { cols, rows } = await page.evaluate(() => {
        const t = window.rexec.state.panes[0].term;
        return { cols: t.cols, rows: t.rows };
      });
      const marker = `size-${width}`;
      await typeIn(0, `echo ${marker}: $(stty size)\n`);
      const m = await waitText(0, new RegExp(`^${marker}: (\\d+) (\\d+)\\s*$`, 'm'), marker);
      check(Number(m[1]) === rows && Number(m[2]) === cols,
        `at ${width}x${height} the shell sees ${m[1]} rows x ${m[2]} cols, as the page shows`);
      sizes.push(`${rows}x${cols}`);
    }
    check(sizes[0] !== sizes[1], `the size changed with the window (${sizes.join(' → ')})`);
  });

  await step('a dropped socket reconnects and replays every line exactly once', async () => {
    await typeIn(0, 'clear; for i in $(seq 1 40); do echo seq-$i; sleep 0.05; done; echo seq-done\n');
    await waitText(0, /^seq-5\s*$/m, 'the sequence to start');
    await page.evaluate(() => window.rexec.state.panes[0].ws.close(4000, 'test drop'));
    await waitText(0, /^seq-done\s*$/m, 'the sequence to end', 20000);
    const lines = (await paneText(0)).split('\n').map((l) => l.trim()).filter((l) => /^seq-\d+$/.test(l));
    const want = Array.from({ length: 40 }, (_, k) => `seq-${k + 1}`);
    check(JSON.stringify(lines) === JSON.stringify(want),
      `seq-1..seq-40 once each, in order (got ${lines.length} lines)`);
    check(await paneState(0) === 'open', 'the pane is connected again');
  });

  await step('a 50 MB flood does not freeze the tab', async () => {
    await tickProbe.start(page);
    // Small flow marks, so the page surely asks the server to pause and resume the shell.
    const before = await page.evaluate(() => {
      window.rexec.flowMarks.high = 256 * 1024;
      window.rexec.flowMarks.low = 64 * 1024;
      const p = window.rexec.state.panes[0];
      return { received: p.received, gaps: p.gaps, pauses: p.pauses };
    });
    const started = Date.now();
    // 37,500,000 bytes → 50,000,000 bytes of base64 in 500,000 lines of 100.
    await typeIn(0, 'head -c 37500000 /dev/zero | base64 -w 100; echo flood-$((40+2))\n');
    await waitText(0, /^flood-42\s*$/m, 'the end of the flood', 180000);
    const seconds = (Date.now() - started) / 1000;
    const maxGap = await tickProbe.stop(page);
    const after = await page.evaluate(() => {
      const p = window.rexec.state.panes[0];
      return { received: p.received, gaps: p.gaps, pauses: p.pauses, paused: p.flowPaused };
    });
    const metrics = await (await fetch(`${sys.url}/metrics`)).text();
    const dropped = /^rexec_user_dropped_bytes_total (\d+)$/m.exec(metrics)?.[1];
    check(after.received - before.received >= 50e6 && after.gaps === before.gaps,
      `all ${after.received - before.received} bytes arrived, none dropped as a gap ` +
      `(gaps ${after.gaps - before.gaps}, the server dropped ${dropped} bytes for slow viewers)`);
    check(after.pauses > before.pauses && !after.paused,
      `the page paused the shell ${after.pauses - before.pauses} times while it drew, and resumed it`);
    check(/session paused, viewers behind/.test(sys.serverLog()),
      'the server paused the session for the page');
    log(`50 MB through the page in ${seconds.toFixed(1)} s (${(50 / seconds).toFixed(1)} MB/s); ` +
        `longest main-thread gap ${maxGap.toFixed(0)} ms`);
    // A frozen tab runs no timers at all until the flood ends; a responsive one ticks every
    // 50 ms with the odd long parse slice. 2 s is far from both.
    check(maxGap < 2000, `timers kept running during the flood (longest gap ${maxGap.toFixed(0)} ms)`);
    await page.evaluate(() => {
      window.rexec.flowMarks.high = 8 << 20;
      window.rexec.flowMarks.low = 2 << 20;
    });
    await typeIn(0, 'clear\n');
  });

  await step('a hidden tab keeps its shell running and keeps only the newest output', async () => {
    // Hidden, as far as the page can tell: document.hidden, and no animation frames.
    await page.evaluate(() => {
      window.realRaf = window.requestAnimationFrame;
      window.requestAnimationFrame = () => 0;
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    const pauses = await page.evaluate(() => window.rexec.state.panes[0].pauses);
    await typeIn(0, 'seq 1 3000000; echo hidden-$((40+2))\n');
    await waitFor('the whole output to reach the hidden tab', () => page.evaluate(() => {
      const q = window.rexec.state.panes[0].queue;
      const tail = q.slice(-3).map((b) => new TextDecoder().decode(b)).join('');
      return /hidden-42\r\n/.test(tail);
    }), 60000);
    const hidden = await page.evaluate(() => {
      const p = window.rexec.state.panes[0];
      return { queued: p.queued, pauses: p.pauses, skipped: p.skippedHidden };
    });
    check(hidden.pauses === pauses, 'a hidden tab never pauses its shell');
    check(hidden.queued <= 8.5 * 1024 * 1024 && hidden.skipped > 10e6,
      `it keeps ${hidden.queued} bytes and skipped ${hidden.skipped} (of about 26 MB)`);
    check(hidden.queued + hidden.skipped <= 26e6, 'it counts what it skipped');
    await page.evaluate(() => {
      window.requestAnimationFrame = window.realRaf;
      delete document.hidden;
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await waitText(0, /^hidden-42\s*$/m, 'the newest output, drawn once visible', 30000);
    const text = await paneText(0);
    check(/^3000000\s*$/m.test(text), 'the last line of the sequence is there');
    check(/bytes not shown while this tab was hidden/.test(text), 'and a note of what was skipped');
    await typeIn(0, 'clear\n');
  });

  await step('upload a file through the page, download it back, and a missing file says so',
    async () => {
      const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
      const payload = crypto.randomBytes(5 * 1024 * 1024 + 123);
      const dir = path.join(sys.dir, 'uploads');
      fs.mkdirSync(dir);
      const statusTexts = [];
      await page.exposeFunction('rexecFilesStatus', (t) => statusTexts.push(t));
      await page.evaluate(() => new MutationObserver(() => {
        window.rexecFilesStatus(document.getElementById('files-status').textContent);
      }).observe(document.getElementById('files-status'), { childList: true }));
      const statusOf = async (kind) => {
        await page.waitForSelector(`#files-status[data-state="${kind}"]`, { timeout: 30000 });
        return page.textContent('#files-status');
      };

      // Upload: the button opens the file chooser, then the form asks for the directory.
      const [chooser] =
        await Promise.all([page.waitForEvent('filechooser'), page.click('#upload')]);
      await chooser.setFiles(
        { name: 'payload.bin', mimeType: 'application/octet-stream', buffer: payload });
      await page.waitForSelector('#files-form', { state: 'visible' });
      check(await page.inputValue('#files-path') === '/tmp', 'the directory defaults to /tmp');
      await page.fill('#files-path', 'relative/dir');
      await page.click('#files-go');
      check(/absolute path/.test(await statusOf('error')), 'a relative directory is refused');
      await page.fill('#files-path', `${dir}/`);
      await page.click('#files-go');
      const uploaded = await statusOf('ok');
      const onDisk = fs.readFileSync(path.join(dir, 'payload.bin'));
      check(onDisk.length === payload.length && sha(onDisk) === sha(payload),
        `${payload.length} bytes landed in ${dir}/payload.bin with the same sha256`);
      check(uploaded.includes(`sha256 ${sha(payload).slice(0, 16)}`) &&
            uploaded.includes(`(${payload.length} bytes)`), `the page says: "${uploaded}"`);
      check(statusTexts.some((t) => /^Uploading payload\.bin: .*%\)$/.test(t)),
        `upload progress was shown (${statusTexts.filter((t) => /%/.test(t)).length} updates)`);
      check(await page.isHidden('#files-form'), 'the form closes after the upload');

      // Download: the listing picks the file, and the page saves it through a download link.
      await page.click('#download');
      check(await page.inputValue('#files-path') === path.join(dir, 'payload.bin'),
        'the download path defaults to the file just uploaded');
      await page.fill('#files-path', `${dir}/`);
      await page.click('#files-browse');
      await page.waitForSelector('#files-entries button:text-is("payload.bin")');
      await page.screenshot(
        { path: path.join(artifacts, `${String(stepNo).padStart(2, '0')}-files-list.png`) });
      await page.click('#files-entries button:text-is("payload.bin")');
      check(await page.inputValue('#files-path') === path.join(dir, 'payload.bin'),
        'the listing of the directory picks the file');
      statusTexts.length = 0;
      const [download] =
        await Promise.all([page.waitForEvent('download'), page.click('#files-go')]);
      const saved = fs.readFileSync(await download.path());
      check(download.suggestedFilename() === 'payload.bin', 'saved as payload.bin');
      check(sha(saved) === sha(payload), `the download has the same ${saved.length} bytes (sha256)`);
      const downloaded = await statusOf('ok');
      check(downloaded.includes(`(${payload.length} bytes)`) &&
            downloaded.includes(`sha256 ${sha(payload).slice(0, 16)}`),
        `the page says: "${downloaded}"`);
      check(statusTexts.some((t) => /^Downloading payload\.bin: .*%\)$/.test(t)),
        `download progress was shown (${statusTexts.filter((t) => /%/.test(t)).length} updates)`);

      // A missing file: the server's error, in the status line.
      await page.click('#download');
      await page.fill('#files-path', `${dir}/missing.bin`);
      await page.click('#files-go');
      const missing = await statusOf('error');
      check(/no such file or directory/.test(missing), `the page says: "${missing}"`);
      await page.click('#files-cancel');
      check(await page.isHidden('#files-form'), 'Cancel closes the form');
    });

  await step('a locked agent asks for an MFA code, refuses a wrong one, opens with a right one',
    async () => {
      const out = run([args.server, 'user', 'mfa-enroll', 'alice', '--db', sys.db]);
      const secret = /secret: ([A-Z2-7]+)/.exec(out)[1];
      const step0 = Math.floor(Date.now() / 30000);
      const lock = await fetch(`${sys.url}/api/security/terminal/agent:${sys.agentId}/mfa-lock`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${sys.token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ code: totp(secret, step0) }),
      });
      check(lock.status === 200, `the agent is locked (${lock.status})`);
      await page.click('#split');
      await page.waitForSelector('#mfa[open]');
      await page.fill('#mfa-code', totp(secret, step0 - 5));
      await page.click('#mfa-form button[type=submit]');
      await page.waitForFunction(() => document.getElementById('mfa-error').textContent !== '');
      check(/not valid/.test(await page.textContent('#mfa-error')), 'a wrong code is refused');
      await page.screenshot({ path: path.join(artifacts, `${String(stepNo).padStart(2, '0')}-mfa-prompt.png`) });
      // The lock used this step's code and each code works once: the next step's (±1 window).
      await page.fill('#mfa-code', totp(secret, step0 + 1));
      await page.click('#mfa-form button[type=submit]');
      await page.waitForSelector('#mfa', { state: 'hidden' });
      await waitFor('the third pane to open', async () => (await page.locator('.pane').count()) === 3 &&
        await paneState(2) === 'open');
      await typeIn(2, 'echo mfa-$((6*7))\n');
      await waitText(2, /^mfa-42\s*$/m, 'output in the new pane');
    });

  const closePane = async (i) => {
    const before = await page.locator('.pane').count();
    await page.locator('.pane').nth(i).locator('.pane-bar button').click();
    await waitFor('the pane to close', async () => (await page.locator('.pane').count()) === before - 1);
  };

  await step('a split past the session limit says so', async () => {
    await page.click('#split');
    await page.waitForSelector('.pane[data-state="error"]');
    const text = await page.textContent('.pane[data-state="error"] .state');
    check(/limit of 3 sessions/.test(text), `the pane says: "${text}"`);
    await closePane(3);
    await closePane(2);  // the MFA pane: two sessions are left, main and the first split
  });

  await step('the agent killed shows offline; back, the terminal works again', async () => {
    await sys.killAgent();
    await page.waitForSelector(`${agentSel}[data-status="offline"]`);
    await waitFor('pane 0 to wait for the agent', async () => await paneState(0) === 'waiting');
    await page.click('#split');  // opened while the agent is away: it waits, then connects
    await waitFor('the new pane to wait', async () => await paneState(2) === 'waiting');
    const text = await page.textContent('.pane:nth-child(3) .state');
    check(/agent offline/.test(text), `a terminal opened now says: "${text}"`);
    await page.screenshot({ path: path.join(artifacts, `${String(stepNo).padStart(2, '0')}-agent-offline.png`) });
    sys.startAgent();
    await page.waitForSelector(`${agentSel}[data-status="online"]`, { timeout: 20000 });
    await waitFor('pane 0 to connect again', async () => await paneState(0) === 'open', 20000);
    await typeIn(0, 'echo back-$((1+1))\n');
    await waitText(0, /^back-2\s*$/m, 'output after the agent came back', 20000);
    // An agent back without its shells is followed by agent_connected, then the old shell's
    // shell_stopped just before the new one's shell_started. Keys typed in between, which a race
    // with the page's reading once delivered, must reach the new shell: Enter there must not
    // drop the socket to start yet another shell. The messages are replayed in that order.
    const between = await page.evaluate(() => {
      const p = window.rexec.state.panes[0];
      const ws = p.ws;
      p.onMessage(JSON.stringify({ type: 'agent_connected', data: { agent_id: p.agentId } }));
      p.onMessage(JSON.stringify({ type: 'shell_stopped', data: { session_id: 'main' } }));
      const seen = { stopped: p.stopped, state: p.el.dataset.state };
      p.input(new TextEncoder().encode('echo between-$((3+3))\r'));
      seen.sameSocket = p.ws === ws;
      p.onMessage(JSON.stringify({ type: 'shell_started', data: { session_id: 'main' } }));
      seen.after = p.el.dataset.state;
      return seen;
    });
    check(between.sameSocket && !between.stopped && between.after === 'open',
      `Enter between a dead shell's end and its replacement's start stays on the socket: ` +
      JSON.stringify(between));
    await waitText(0, /^between-6\s*$/m, 'the line typed between the two messages');
    await waitFor('the waiting pane to connect', async () => await paneState(2) === 'open', 20000);
    await typeIn(2, 'echo late-$((2+2))\n');
    await waitText(2, /^late-4\s*$/m, 'output in the pane opened while the agent was away');
  });

  // ---- The management views (docs/web.md) ----

  // axe-core (npm, tests/browser) on the page as it is: no serious or critical violation.
  const axeSource = fs.readFileSync(
    createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  const axeRuns = [];
  async function axe(on, what) {
    // Evaluated through the DevTools protocol, which the page's CSP does not govern.
    if (!await on.evaluate(() => !!window.axe)) await on.evaluate(axeSource);
    const result = await on.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ['violations'] });
      return r.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
      }));
    });
    const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    axeRuns.push({ what, violations: result.length, bad: bad.length });
    for (const v of result) log(`axe ${what}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.join(', ')}`);
    check(bad.length === 0, `axe-core: no serious or critical violation on ${what} ` +
      `(${result.length} minor)`);
  }
  const shot = (name) => page.screenshot(
    { path: path.join(artifacts, `${String(stepNo).padStart(2, '0')}-${name}.png`) });
  const viewShown = (name) => page.waitForSelector(`#view-${name}:not([hidden])`);

  await step('the agent view charts the last 15 minutes and lists the sessions', async () => {
    await closePane(2);  // the session limit is 3: main and one split stay
    const count = async () => (await page.textContent(`${agentSel} .status .sessions`)).trim();
    await waitFor('the card to count 2 sessions', async () => (await count()) === '· 2 sessions');
    await page.click(`${agentSel} .details`);
    await viewShown('agent');
    await waitFor('the charts to draw two points or more', async () => {
      const points = await page.evaluate(() => window.rexec.manage.chartPoints());
      return points.cpu >= 2 && points.memory >= 2 && points.disk >= 2 && points;
    }, 20000);
    const points = await page.evaluate(() => window.rexec.manage.chartPoints());
    check(points.cpu >= 2, `the charts draw ${JSON.stringify(points)} points`);
    const before = points.cpu;
    await waitFor('a live point from agent_stats', async () =>
      (await page.evaluate(() => window.rexec.manage.chartPoints())).cpu > before, 10000);
    const label = await page.getAttribute('.chart[data-chart="cpu"] .plot', 'aria-label');
    check(/CPU over the last 15 minutes: \d+ samples, now/.test(label), `the chart says: "${label}"`);
    await page.waitForSelector('#sessions tr[data-session="main"]');
    const rows = await page.$$eval('#sessions tbody tr', (trs) => trs.map((t) => t.dataset.session));
    check(rows.length === 2 && rows[0] === 'main', `the sessions: ${rows.join(', ')}`);
    // A terminal opened now is counted at once, not at the agent's next stats.
    await page.evaluate(() => { window.notReloaded = true; });
  });

  let otherSplit = '';
  await step('a session of another tab is attached to from the agent view, then ended', async () => {
    const other = await context.newPage();
    other.on('pageerror', (e) => consoleLines.push(`pageerror (other tab): ${e.message}`));
    await other.goto(`${sys.url}/`);
    await other.fill('#token', sys.token);
    await other.click('#sign-in-form button[type=submit]');
    await other.click(`${agentSel} .open`);
    await other.waitForSelector('.pane[data-session="main"][data-state="open"]');
    await other.click('#split');
    await other.waitForSelector('.pane[data-session^="split-"][data-state="open"]');
    otherSplit = await other.getAttribute('.pane[data-session^="split-"]', 'data-session');
    await other.evaluate(() => window.rexec.state.panes[1].term.focus());
    await other.keyboard.type('echo other-tab-$((6*7))\n');
    await waitFor('the other tab to print', async () =>
      /^other-tab-42\s*$/m.test(await other.evaluate(() => window.rexec.paneText(1))));
    const row = `#sessions tr[data-session="${otherSplit}"]`;
    await page.waitForSelector(row);
    check(await page.textContent(`${agentSel} .status .sessions`) === ' · 3 sessions',
      'the card counts the other tab\'s split at once');
    check(/^1 /.test(await page.textContent(`${row} td:nth-child(3)`)), 'one viewer');
    await page.click(`${row} button:text-is("Attach")`);
    await viewShown('workspace');
    const attached = await waitFor('the attached pane', async () => {
      const i = await page.evaluate((sid) =>
        window.rexec.state.panes.findIndex((p) => p.sessionId === sid), otherSplit);
      return i >= 0 && await paneState(i) === 'open' && i + 1;
    }) - 1;
    await waitText(attached, /^other-tab-42\s*$/m, 'the split\'s scrollback in the attached pane');
    await typeIn(attached, 'echo from-attached-$((1+2))\n');
    await waitFor('the other tab to see it', async () =>
      /^from-attached-3\s*$/m.test(await other.evaluate(() => window.rexec.paneText(1))));
    await page.click(`${agentSel} .details`);
    await viewShown('agent');
    await waitFor('two viewers', async () => /^2 /.test(await page.textContent(`${row} td:nth-child(3)`)));
    await shot('agent-view');
    await page.click(`${row} button:text-is("End")`);
    await page.waitForSelector('#confirm[open]');
    await axe(page, 'the confirmation dialog');
    await page.click('#confirm-ok');
    await page.waitForSelector(row, { state: 'detached' });
    check(await page.textContent(`${agentSel} .status .sessions`) === ' · 2 sessions',
      'the card counts 2 sessions at once');
    await waitFor('the other tab to say the session ended', async () =>
      /session ended/.test(await other.textContent('.pane[data-state="closed"] .state').catch(() => '')));
    const mine = await page.evaluate((sid) => {
      const p = window.rexec.state.panes.find((q) => q.el.dataset.state === 'closed');
      return p ? p.stateEl.textContent : '';
    }, otherSplit);
    check(/session ended/.test(mine), `the attached pane says: "${mine}"`);
    await other.close();
    await page.click('#nav a[data-view="workspace"]');
    await viewShown('workspace');
    await closePane(await page.evaluate(() =>
      window.rexec.state.panes.findIndex((p) => p.el.dataset.state === 'closed')));
  });

  await step('a recording plays to the end in asciinema-player, with what the viewer saw', async () => {
    await page.click(`${agentSel} .details`);
    await viewShown('agent');
    await page.selectOption('#recording-mode', 'on');
    await page.waitForFunction(() => /Saved: on/.test(document.getElementById('recording-mode-status').textContent));
    await page.click('#nav a[data-view="workspace"]');
    await page.click('#split');
    const i = (await page.locator('.pane').count()) - 1;
    await waitFor('the recorded pane', async () => await paneState(i) === 'open');
    await typeIn(i, 'echo recorded-$((6*7)); for n in 1 2 3; do echo line-$n; sleep 0.3; done\n');
    await waitText(i, /^line-3\s*$/m, 'the recorded output');
    const seen = await paneText(i);
    await closePane(i);  // its shell ends, and so does the recording
    await page.click(`${agentSel} .details`);
    await viewShown('agent');
    // The split's recording: `main` may have one too now (recording is on for the agent), and
    // on a slow machine it can be the newest row and minutes long.
    await page.locator('#recordings tbody tr', { has: page.locator('code', { hasText: /^split-/ }) })
      .first().locator('a:text-is("Play")').click();
    await viewShown('recording');
    await page.waitForSelector('#player .ap-player, #player .ap-wrapper', { timeout: 15000 });
    await page.selectOption('#player-speed', '4');
    await page.click('#player-play');
    await page.waitForFunction(
      () => /Played to the end/.test(document.getElementById('player-status').textContent),
      null, { timeout: 30000 });
    const played = await page.evaluate(() => document.querySelector('#player').innerText);
    check(/recorded-42/.test(played) && /line-3/.test(played),
      'the player shows, at the end, what the viewer saw (recorded-42 … line-3)');
    check(/recorded-42/.test(seen), 'and the viewer saw it');
    const duration = Number(await page.getAttribute('#player-seek', 'max'));
    check(duration >= 0.6, `the recording lasts ${duration.toFixed(1)} s (three lines 0.3 s apart)`);
    await axe(page, 'the recording player');
    await shot('recording-played');
    // Seek back to the start: the screen is as it was then, without the output.
    await page.fill('#player-seek', '0');
    await page.dispatchEvent('#player-seek', 'input');
    await waitFor('the player at the start', async () =>
      !/line-3/.test(await page.evaluate(() => document.querySelector('#player').innerText)));
    check(true, 'seeking to 0 shows the screen before the output');
  });

  await step('a token is created and shown once, revoked with a confirmation, then refused', async () => {
    await page.click('#nav a[data-view="tokens"]');
    await viewShown('tokens');
    await page.waitForSelector('#tokens tbody tr');
    await page.fill('#token-name', 'browser-made');
    await page.selectOption('#token-expiry', '7');
    await page.click('#token-form button[type=submit]');
    await page.waitForSelector('#token-dialog[open]');
    const made = (await page.textContent('#token-value')).trim();
    check(/^rexec_[0-9a-f]{64}$/.test(made), 'the new token is shown');
    await axe(page, 'the new token dialog');
    await shot('token-shown');
    const validate = (t) => fetch(`${sys.url}/api/tokens/validate`,
      { headers: { Authorization: `Bearer ${t}` } }).then((r) => r.status);
    check(await validate(made) === 200, 'the new token works');
    await page.click('#token-done');
    check(await page.textContent('#token-value') === '', 'and is gone from the page once closed');
    const stored = await page.evaluate(() => JSON.stringify(sessionStorage) + JSON.stringify(localStorage));
    check(!stored.includes(made), 'it is in no storage');
    const row = '#tokens tbody tr:has(td:text-is("browser-made"))';
    await page.waitForSelector(`${row}[data-state="active"]`);
    check(/^rexec_[0-9a-f]{6}/.test(await page.textContent(`${row} code`)), 'listed by its prefix');
    await page.click(`${row} button:text-is("Revoke")`);
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm button[value="cancel"]');
    check(await validate(made) === 200, 'Cancel keeps it');
    await page.click(`${row} button:text-is("Revoke")`);
    await page.click('#confirm-ok');
    await page.waitForSelector(`${row}[data-state="revoked"]`);
    check(await validate(made) === 401, 'the revoked token is refused (401)');
    await shot('tokens');
  });

  await step('a stale web session may not create a token, and says why', async () => {
    const other = await context.newPage();
    const me = await page.evaluate(() => window.rexec.state.session.user);
    const now = Math.floor(Date.now() / 1000);
    const session = {
      token: makeJwt({ user_id: me.id, username: me.username, exp: now + 600, iat: now,
        auth_time: now - 20 * 60 }),
      expires_at: new Date((now + 600) * 1000).toISOString(),
      session_ends_at: new Date((now + 4 * 60) * 1000).toISOString(),  // 4 minutes left
      user: me,
    };
    await other.goto(`${sys.url}/`);
    await other.evaluate((s) => sessionStorage.setItem('rexec.session', JSON.stringify(s)), session);
    await other.goto(`${sys.url}/#/tokens`);
    await other.reload();
    await other.waitForSelector('#view-tokens:not([hidden])');
    await other.fill('#token-name', 'too-late');
    await other.click('#token-form button[type=submit]');
    await other.waitForFunction(() => document.getElementById('token-form-error').textContent !== '');
    const why = await other.textContent('#token-form-error');
    check(/needs a recent sign-in/.test(why), `the page says: "${why}"`);
    // Its sign-in ends in 4 minutes: the page has warned already.
    await other.waitForSelector('#notice:not([hidden])');
    const warning = await other.textContent('#notice');
    check(/Your sign-in ends at .* \(in [34] minutes\)/.test(warning), `the warning: "${warning}"`);
    await other.screenshot({ path: path.join(artifacts, `${String(stepNo).padStart(2, '0')}-stale-session.png`) });
    await other.close();
  });

  let secondAgent = null;
  await step('add a machine: the shown one-liner, run for real, brings a second agent online', async () => {
    await page.click('#add-machine');
    await page.waitForSelector('#add-dialog[open]');
    await axe(page, 'the add-a-machine dialog');
    await page.fill('#add-name', 'second-machine');
    await page.click('#add-form button[type=submit]');
    await page.waitForSelector('#add-steps:not([hidden])');
    const command = (await page.textContent('#add-command')).trim();
    const want = new RegExp(`^curl -fsSL ${sys.url}/install-agent\\.sh \\| sh -s -- --token rexec_[0-9a-f]{64} --name second-machine$`);
    check(want.test(command), `the one-liner: ${command.replace(/rexec_[0-9a-f]{64}/, 'rexec_…')}`);
    check(await page.evaluate(() => localStorage.length) === 0, 'nothing in localStorage');
    await shot('add-machine');
    // Run it as a person would, as an unprivileged user (the installer writes only to its home).
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rexec-browser-home-'));
    tempDirs.push(home);
    fs.chmodSync(home, 0o755);
    const asNobody = process.getuid() === 0;
    if (asNobody) fs.chownSync(home, 65534, 65534);
    const wrap = (argv) => (asNobody
      ? ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', ...argv] : argv);
    const env = { PATH: '/usr/bin:/bin', HOME: home, ...(process.env.ASAN_OPTIONS
      ? { ASAN_OPTIONS: process.env.ASAN_OPTIONS, LSAN_OPTIONS: process.env.LSAN_OPTIONS || '' } : {}) };
    const envArgs = ['env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`)];
    const started = Date.now();
    const install = run(wrap([...envArgs, 'sh', '-c', `cd "$HOME" && ${command}`]), {}, 120000);
    log(`the installer ran in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    log(`installer: ${install.split('\n').slice(-2).join(' | ')}`);
    const bin = path.join(home, '.local/bin/rexec-agent');
    const config = path.join(home, '.config/rexec/agent.json');
    check(fs.existsSync(bin) && fs.existsSync(config), 'the installer put the agent and its config in place');
    secondAgent = JSON.parse(fs.readFileSync(config, 'utf8')).agent_id;
    await page.waitForFunction(() => document.getElementById('add-step-register').dataset.state === 'done');
    check(/Registered as second-machine/.test(await page.textContent('#add-step-register')),
      'the page saw the registration');
    // No systemd here: start it as install.sh says.
    const fd = fs.openSync(path.join(sys.dir, 'agent2.log'), 'a');
    const argv = wrap([...envArgs, bin, '--config', config, 'run']);
    sys.adopt(spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd] }));
    fs.closeSync(fd);
    await page.waitForSelector('#add-dialog', { state: 'hidden', timeout: 20000 });
    const sel = `.agent[data-agent-id="${secondAgent}"]`;
    await page.waitForSelector(`${sel}[data-status="online"]`);
    check(await page.evaluate(() => window.notReloaded === true), 'online in the list without a reload');
    await page.waitForSelector('.pane[data-session="main"][data-state="open"]');
    check(await page.evaluate(() => window.rexec.state.agentId) === secondAgent,
      'and its terminal is open');
    await typeIn(0, 'echo second-$((2+3))\n');
    await waitText(0, /^second-5\s*$/m, 'a command on the new machine');
    const tokens = await sys.api('/api/tokens');
    const reg = tokens.body.find((t) => t.scopes.includes('register') && /second-machine/.test(t.name));
    check(reg && reg.revoked_at, 'the registration token was used up');
  });

  await step('the audit table filters by type and agent, and pages', async () => {
    // Pages of 20 (50 on the page), so that this test's few dozen events fill more than one.
    await page.evaluate(() => { window.rexec.manage.auditOptions.pageSize = 20; });
    await page.click('#nav a[data-view="audit"]');
    await viewShown('audit');
    await page.waitForSelector('#audit tbody tr');
    const types = async () => page.$$eval('#audit tbody tr', (trs) => trs.map((t) => t.dataset.type));
    const all = await types();
    const olderOff = await page.isDisabled('#audit-older');
    check(all.length === 20 && !olderOff, `a full first page of 20 events (${all.length}, ` +
      `${new Set(all).size} types), and an older page (${olderOff ? 'none' : 'there'})`);
    await page.click('#audit-older');
    await page.waitForFunction(() => /Page 2/.test(document.getElementById('audit-page').textContent));
    check(!await page.isDisabled('#audit-newer'), 'page 2, and back is possible');
    await page.selectOption('#audit-type', 'agent_registered');
    await page.click('#audit-form button[type=submit]');
    await page.waitForFunction(() => /Page 1/.test(document.getElementById('audit-page').textContent));
    const registered = await types();
    check(registered.length === 2 && registered.every((t) => t === 'agent_registered'),
      `type agent_registered: ${registered.length} rows, both registrations`);
    await page.selectOption('#audit-type', '');
    await page.selectOption('#audit-agent', secondAgent);
    await page.click('#audit-form button[type=submit]');
    await waitFor('rows of the second machine only', async () => {
      const agents = await page.$$eval('#audit tbody tr td:nth-child(3)', (tds) => tds.map((t) => t.textContent));
      return agents.length > 0 && agents.every((a) => a === 'second-machine');
    });
    await axe(page, 'the audit view');
    await shot('audit-filtered');
    await page.fill('#audit-since', '2099-01-01T00:00');
    await page.click('#audit-form button[type=submit]');
    await page.waitForFunction(() => /No events match/.test(document.getElementById('audit-page').textContent));
    await page.click('#audit-reset');
    await page.evaluate(() => { window.rexec.manage.auditOptions.pageSize = 50; });
  });

  await step('the keyboard reaches everything: shortcuts, search, copy on select, help', async () => {
    await page.click(`${agentSel} .open`);
    await viewShown('workspace');
    await page.waitForSelector('.pane[data-session="main"][data-state="open"]');
    const panes = () => page.locator('.pane').count();
    await typeIn(0, 'clear; echo find-me-1; echo find-me-2\n');
    await waitText(0, /^find-me-2\s*$/m, 'text to find');
    await page.keyboard.press('Alt+Shift+D');
    await waitFor('a split from the keyboard', async () => (await panes()) === 2);
    await waitFor('the split to open', async () => await paneState(1) === 'open');
    check(await page.evaluate(() => window.rexec.state.panes[1].el.contains(document.activeElement)),
      'the new pane has the focus');
    await page.keyboard.press('Alt+Shift+ArrowLeft');
    check(await page.evaluate(() => window.rexec.state.panes[0].el.contains(document.activeElement)),
      'Alt+Shift+← moves to the first pane');
    await page.keyboard.press('Alt+Shift+F');
    await page.waitForSelector('#search:not([hidden])');
    await page.keyboard.type('find-me');
    await page.waitForFunction(() => /of 2|2 found/.test(document.getElementById('search-count').textContent));
    check(true, `search: "${await page.textContent('#search-count')}"`);
    await page.keyboard.press('Escape');
    await page.waitForSelector('#search', { state: 'hidden' });
    // Copy on select.
    await page.evaluate(() => window.rexec.state.panes[0].term.selectLines(0, 0));
    await waitFor('the selection in the clipboard', async () =>
      (await page.evaluate(() => navigator.clipboard.readText())).includes('find-me-1'));
    check(true, 'selecting copies');
    await page.keyboard.press('Alt+Shift+ArrowRight');
    await page.keyboard.press('Alt+Shift+W');
    await waitFor('the split closed from the keyboard', async () => (await panes()) === 1);
    await page.keyboard.press('Alt+Shift+H');
    await page.waitForSelector('#help[open]');
    await axe(page, 'the help overlay');
    await shot('help');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#help', { state: 'hidden' });
    // Out of the terminal (where Tab belongs to the shell), then Tab through the page: forwards
    // to the terminal, and from the list of machines backwards to the top.
    const reached = new Set();
    const focused = () => page.evaluate(() => {
      const e = document.activeElement;
      if (e.closest('.xterm')) return 'terminal';
      return e.id || e.getAttribute('aria-label') || e.textContent.trim().slice(0, 40);
    });
    for (const key of ['Tab', 'Shift+Tab']) {
      await page.evaluate(() => window.rexec.state.panes[0].term.focus());
      await page.keyboard.press('Alt+Shift+M');
      reached.add(await focused());
      for (let k = 0; k < 20; k += 1) {
        await page.keyboard.press(key);
        const at = await focused();
        reached.add(at);
        if (at === 'terminal' || at === 'Skip to the content') break;
      }
    }
    log(`Tab reached: ${[...reached].join(' | ')}`);
    await page.evaluate(() => document.activeElement.blur());  // the skip link shows while focused
    for (const want of ['add-machine', 'Machines', 'Tokens', 'Audit', 'help-open', 'sign-out',
      'Open terminal on browser-agent', 'Details of browser-agent: charts, sessions, recordings',
      'split', 'terminal']) {
      check(reached.has(want), `Tab reaches ${want}`);
    }
  });

  await step('axe-core finds no serious or critical violation on any view', async () => {
    await page.click('#nav a[data-view="workspace"]');
    await axe(page, 'the terminals');
    await page.click(`${agentSel} .details`);
    await viewShown('agent');
    await page.waitForSelector('.chart[data-points]');
    await axe(page, 'the agent view');
    await page.click('#nav a[data-view="tokens"]');
    await viewShown('tokens');
    await page.waitForSelector('#tokens tbody tr');
    await axe(page, 'the tokens view');
    await page.click('#nav a[data-view="audit"]');
    await page.waitForSelector('#audit tbody tr');
    await axe(page, 'the audit view');
    const signIn = await context.newPage();
    await signIn.goto(`${sys.url}/`);
    await signIn.waitForSelector('#sign-in-form');
    await axe(signIn, 'the sign-in page');
    await signIn.close();
    log(`axe-core runs: ${axeRuns.map((r) => `${r.what} ${r.bad}/${r.violations}`).join('; ')}`);
    await page.click('#nav a[data-view="workspace"]');
  });

  await step('the page renews its session before it expires', async () => {
    const current = async () => page.evaluate(() => JSON.parse(sessionStorage['rexec.session']).token);
    await waitFor('a renewed JWT', async () => (await current()) !== firstJwt, 45000);
    const claims = (t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString());
    const [a, b] = [claims(firstJwt), claims(await current())];
    check(b.exp > a.exp && b.auth_time === a.auth_time,
      `a new JWT, later expiry (+${b.exp - a.exp} s), same sign-in time`);
    check(await page.isVisible('#app'), 'still signed in');
  });

  await step('sign out forgets the session', async () => {
    await page.click('#sign-out');
    await page.waitForSelector('#sign-in-form', { state: 'visible' });
    check(await page.evaluate(() => sessionStorage.length) === 0, 'sessionStorage is empty');
    check(await page.locator('.pane').count() === 0, 'no terminal is left open');
  });

  // Refused requests (the wrong token, the offline agent) are console errors by design; script
  // exceptions are not.
  const errors = consoleLines.filter((l) => l.startsWith('pageerror'));
  check(errors.length === 0, `no script errors on the page (${errors.join('; ')})`);
  log(`screenshots in ${artifacts}`);
  ok = true;
} finally {
  await browser.close();
  await sys.stop();
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
}
if (!ok) fail('web page test failed');
