// SPDX-License-Identifier: MIT
// The web terminal page (docs/web.md) in a real headless Chromium against a real server, agent
// and shells: sign in, see the agent online with stats, open a terminal and read back what it
// printed, a split that is another shell, resize followed by `stty size`, a dropped socket that
// reconnects with every line exactly once, a 50 MB flood that does not freeze the tab, the MFA
// prompt, and the agent killed (offline) and brought back; a file uploaded through the Upload
// button and downloaded back through the Download button. Each step saves a screenshot into
// --artifacts; a failing step also saves one and prints the page's console and the server logs.
//
//   node web.test.mjs --server BIN --agent BIN [--artifacts DIR]
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  check, fail, launchChromium, loadPlaywright, log, parseArgs, run, sleep, startSystem, waitFor,
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

// Three sessions per agent, so the test can reach the limit and see the page say so; one-minute
// web sessions, so the test sees the page renew its JWT.
const sys = await startSystem({
  serverBin: args.server,
  agentBin: args.agent,
  serverArgs: ['--max-sessions-per-agent', '3', '--web-session', '1m'],
});
const browser = await launchChromium(pw);
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
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
    await page.evaluate(() => {
      window.probe = { max: 0, last: performance.now() };
      window.probe.timer = setInterval(() => {
        const t = performance.now();
        window.probe.max = Math.max(window.probe.max, t - window.probe.last);
        window.probe.last = t;
      }, 50);
    });
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
    const maxGap = await page.evaluate(() => { clearInterval(window.probe.timer); return window.probe.max; });
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
    await waitFor('the waiting pane to connect', async () => await paneState(2) === 'open', 20000);
    await typeIn(2, 'echo late-$((2+2))\n');
    await waitText(2, /^late-4\s*$/m, 'output in the pane opened while the agent was away');
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
}
if (!ok) fail('web page test failed');
