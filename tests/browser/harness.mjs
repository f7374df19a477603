// SPDX-License-Identifier: MIT
// Browser-test harness: a real rexec-server and rexec-agent on 127.0.0.1 (as the C++ fixture
// starts them), and Debian's Chromium driven by playwright-core. Exit code 77 means "skipped"
// (ctest's SKIP_RETURN_CODE) and is used only when the browser or playwright-core is missing and
// REXEC_REQUIRE_BROWSER is unset; CI sets it, so there a missing browser fails.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const kSkip = 77;

export function log(...args) {
  process.stderr.write(`[browser-test] ${args.join(' ')}\n`);
}

export function fail(message) {
  throw new Error(message);
}

export function check(cond, message) {
  if (!cond) fail(`check failed: ${message}`);
  log(`ok: ${message}`);
}

const chromiumPath = process.env.REXEC_CHROMIUM || '/usr/bin/chromium';

// playwright-core, or exit 77 when the test cannot run here.
export async function loadPlaywright() {
  const missing = [];
  if (!fs.existsSync(chromiumPath)) missing.push(`${chromiumPath} (apt-get install chromium)`);
  let pw = null;
  try {
    pw = await import('playwright-core');
  } catch {
    missing.push('playwright-core (npm ci --prefix tests/browser)');
  }
  if (missing.length > 0) {
    const text = `browser test needs ${missing.join(' and ')}`;
    if (process.env.REXEC_REQUIRE_BROWSER) fail(text);
    log(`SKIPPED: ${text}`);
    process.exit(kSkip);
  }
  return pw;
}

export async function launchChromium(pw) {
  // The flags keep Chromium off the network (this machine has none) and run it as root.
  return pw.chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what, fn, timeoutMs = 15000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export function run(argv, env = {}, timeoutMs = 30000) {
  const r = spawnSync(argv[0], argv.slice(1), {
    encoding: 'utf8', env: { ...process.env, ...env }, timeout: timeoutMs,
  });
  if (r.status !== 0) fail(`${argv.slice(0, 3).join(' ')} failed: ${r.stderr}`);
  return r.stdout.trim();
}

// A running server with one user and one online agent. Call stop() when done.
export async function startSystem({ serverBin, agentBin, serverArgs = [], agentEnv = {} }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rexec-browser-'));
  const db = path.join(dir, 'rexec.db');
  const serverLog = path.join(dir, 'server.log');
  const agentLog = path.join(dir, 'agent.log');
  const children = [];
  const start = (argv, logPath, env = {}) => {
    const fd = fs.openSync(logPath, 'a');
    const child = spawn(argv[0], argv.slice(1), {
      stdio: ['ignore', fd, fd], env: { ...process.env, ...env },
    });
    fs.closeSync(fd);
    children.push(child);
    return child;
  };
  start([serverBin, 'serve', '--listen', '127.0.0.1:0', '--db', db, '--log-level', 'debug',
    '--jwt-secret', 'browser-test-secret-0123456789abcdef', ...serverArgs], serverLog);
  const url = await waitFor('the server to listen', () => {
    const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(fs.readFileSync(serverLog, 'utf8'));
    return m && m[1];
  });
  const token = run([serverBin, 'user', 'add', 'alice', '--db', db]);
  const config = path.join(dir, 'agent.json');
  const agentId = run([agentBin, 'register', '--server', url, '--token', token,
    '--name', 'browser-agent', '--config', config]);
  let agent = null;
  const startAgent = () => {
    agent = start([agentBin, 'run', '--config', config], agentLog,
      { REXEC_LOG_LEVEL: 'debug', HOME: '/tmp', HISTFILE: '/dev/null', ...agentEnv });
  };
  startAgent();
  const api = async (p) => {
    const r = await fetch(url + p, { headers: { Authorization: `Bearer ${token}` } });
    return { status: r.status, body: await r.json().catch(() => null) };
  };
  await waitFor('the agent to come online',
    async () => (await api(`/api/agents/${agentId}`)).body?.status === 'online');
  return {
    url, token, agentId, dir, api, db,
    // SIGKILL the agent (its shells die with their PTYs); startAgent() runs it again.
    killAgent: () => new Promise((resolve) => {
      if (agent.exitCode !== null || agent.signalCode !== null) { resolve(); return; }
      agent.once('exit', () => resolve());
      agent.kill('SIGKILL');
    }),
    startAgent,
    // Another process of the test's, stopped with the others (a second agent, say).
    adopt: (child) => children.push(child),
    serverLog: () => fs.readFileSync(serverLog, 'utf8'),
    agentLog: () => fs.readFileSync(agentLog, 'utf8'),
    stop: async () => {
      for (const c of children.reverse()) {
        if (c.exitCode === null) c.kill('SIGTERM');
      }
      await sleep(300);
      for (const c of children) {
        if (c.exitCode === null) c.kill('SIGKILL');
      }
    },
    dumpLogs: () => {
      for (const f of [serverLog, agentLog]) {
        log(`---- ${f}`);
        process.stderr.write(fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '(none)\n');
      }
    },
  };
}

// Parses `--name value` pairs.
export function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  return out;
}

// The longest gap between a page's 50 ms timer ticks, from start() to stop(): how long the
// page's main thread was busy at a stretch (the flood test and benchmark).
export const tickProbe = {
  start: (page) => page.evaluate(() => {
    window.probe = { max: 0, last: performance.now() };
    window.probe.timer = setInterval(() => {
      const t = performance.now();
      window.probe.max = Math.max(window.probe.max, t - window.probe.last);
      window.probe.last = t;
    }, 50);
  }),
  stop: (page) => page.evaluate(() => {
    clearInterval(window.probe.timer);
    return window.probe.max;
  }),
};
