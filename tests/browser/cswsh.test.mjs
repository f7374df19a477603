// SPDX-License-Identifier: MIT
// Cross-site WebSocket hijacking (PROTOCOL §2), in a real headless Chromium: a page on another
// origin holds the victim's token and tries to open the victim's terminal and events sockets
// with it, in the URL and as the `rexec.token.<token>` subprotocol. The server must refuse the
// upgrade before any side effect: no socket opens, no shell starts on the agent. The same page
// served from an allowed origin (http://localhost:*) opens the terminal and runs a command, so
// the refusal is the origin check and not a broken test.
//
//   node cswsh.test.mjs --server BIN --agent BIN
import http from 'node:http';

import {
  check, launchChromium, loadPlaywright, log, parseArgs, startSystem,
} from './harness.mjs';

const args = parseArgs(process.argv.slice(2));
const pw = await loadPlaywright();

// A plain page on `host`, the attacker's (or the legitimate) site.
function servePage(host) {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>page</title><p>a page on another site</p>');
  });
  return new Promise((resolve) => {
    server.listen(0, host, () => resolve({ server, port: server.address().port }));
  });
}

// Runs in the page: opens a WebSocket and reports what happened. With `input`, types it once the
// shell has started and waits for `expect` in the output.
function tryOpen({ wsUrl, protocols, input, expect, timeoutMs }) {
  return new Promise((resolve) => {
    const r = { opened: false, closeCode: null, output: '', protocol: '', messages: [] };
    const ws = new WebSocket(wsUrl, protocols);
    const timer = setTimeout(() => { ws.close(); resolve(r); }, timeoutMs);
    ws.onopen = () => { r.opened = true; r.protocol = ws.protocol; };
    ws.onclose = (e) => { r.closeCode = e.code; clearTimeout(timer); resolve(r); };
    ws.onmessage = (e) => {
      if (typeof e.data !== 'string') return;
      const m = JSON.parse(e.data);
      r.messages.push(m.type);
      if (m.type === 'output') r.output += m.data;
      if (m.type === 'shell_started' && input) ws.send(JSON.stringify({ type: 'input', data: input }));
      if (expect && r.output.includes(expect)) ws.close(1000);
    };
  });
}

const sys = await startSystem({ serverBin: args.server, agentBin: args.agent });
const browser = await launchChromium(pw);
const pages = [];
const consoleLines = [];
let ok = false;
try {
  const evil = await servePage('127.0.0.2');
  const good = await servePage('127.0.0.1');
  pages.push(evil.server, good.server);
  const wsBase = sys.url.replace(/^http/, 'ws');
  const terminal = (id) => `${wsBase}/ws/agent/${sys.agentId}/terminal?id=${id}&newSession=true`;
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (m) => consoleLines.push(m.text()));

  // The attacker's origin: http://127.0.0.2:<port>, not the server's and not localhost.
  const evilOrigin = `http://127.0.0.2:${evil.port}`;
  await page.goto(`${evilOrigin}/`);
  const sessionsBefore = (await sys.api(`/api/agents/${sys.agentId}/status`)).body.sessions;
  const attempts = [
    ['token in the URL', terminal('evil1') + `&token=${sys.token}`, ['rexec.v1']],
    ['token as a subprotocol', terminal('evil2'), ['rexec.v1', `rexec.token.${sys.token}`]],
    ['events hub', `${wsBase}/api/events?token=${sys.token}`, ['rexec.v1']],
  ];
  for (const [what, wsUrl, protocols] of attempts) {
    const r = await page.evaluate(tryOpen, { wsUrl, protocols, timeoutMs: 5000 });
    check(!r.opened && r.messages.length === 0,
      `${what} from ${evilOrigin}: the socket never opens (close code ${r.closeCode})`);
  }
  const handshake403 = consoleLines.filter((l) => l.includes('Unexpected response code: 403'));
  check(handshake403.length === attempts.length,
    `Chromium reports each handshake as answered 403 (${handshake403.length})`);
  const serverLog = sys.serverLog();
  const refusals = serverLog.split('\n').filter((l) => /upgrade refused .*status=403/.test(l));
  check(refusals.length === attempts.length,
    `the server refused ${attempts.length} upgrades with 403 (log has ${refusals.length})`);
  const agentLog = sys.agentLog();
  check(!/sid=split-evil/.test(agentLog), 'no shell was started on the agent for the attacker');
  const sessionsAfter = (await sys.api(`/api/agents/${sys.agentId}/status`)).body.sessions;
  check(sessionsAfter === sessionsBefore,
    `the agent's session count is unchanged (${sessionsBefore} → ${sessionsAfter})`);

  // The refusal body, as a non-browser client sees it.
  const refused = await fetch(`${sys.url}/ws/agent/${sys.agentId}/terminal?id=evil3`, {
    headers: { Authorization: `Bearer ${sys.token}`, Origin: evilOrigin },
  });
  check(refused.status === 403 && (await refused.text()) === '{"error":"origin not allowed"}',
    'a GET of the socket URL with that Origin gets 403 {"error":"origin not allowed"}');

  // The same page on an allowed origin (http://localhost:*) gets a working terminal.
  await page.goto(`http://localhost:${good.port}/`);
  const r = await page.evaluate(tryOpen, {
    wsUrl: terminal('good1'),
    protocols: ['rexec.v1', `rexec.token.${sys.token}`],
    input: 'echo cswsh-$((6*7))\r',
    expect: 'cswsh-42',
    timeoutMs: 15000,
  });
  check(r.opened && r.protocol === 'rexec.v1', `from http://localhost:${good.port} the socket opens`);
  check(r.output.includes('cswsh-42'), 'and the command typed into it runs');
  ok = true;
} catch (e) {
  log(`page console: ${consoleLines.join(' | ').replaceAll(sys.token, 'rexec_<token>')}`);
  throw e;
} finally {
  await browser.close();
  for (const s of pages) s.close();
  if (!ok) sys.dumpLogs();
  await sys.stop();
}
log('PASS');
