// SPDX-License-Identifier: MIT
// Benchmark (not a test): the web page's 50 MB flood, as in web.test.mjs step 9, for one build
// and, when given, a baseline build, alternating in the same run so both see the same machine.
// Prints, per run, the page's throughput and the longest gap between its 50 ms timer ticks, then
// the medians and their ratios (docs/performance.md, "In the browser").
//
//   node flood.bench.mjs --server BIN --agent BIN [--baseline-server BIN --baseline-agent BIN]
//                        [--rounds N]
import {
  launchChromium, loadPlaywright, log, parseArgs, startSystem, tickProbe, waitFor,
} from './harness.mjs';

const args = parseArgs(process.argv.slice(2));
const rounds = Number(args.rounds || 3);
const pw = await loadPlaywright();

async function flood(serverBin, agentBin) {
  const sys = await startSystem({ serverBin, agentBin });
  const browser = await launchChromium(pw);
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } }))
      .newPage();
    await page.goto(`${sys.url}/`);
    await page.fill('#token', sys.token);
    await page.click('#sign-in-form button[type=submit]');
    await page.click(`.agent[data-agent-id="${sys.agentId}"] .open`);
    await page.waitForSelector('.pane[data-session="main"][data-state="open"]');
    await tickProbe.start(page);
    await page.evaluate(() => window.rexec.state.panes[0].term.focus());
    const started = Date.now();
    await page.keyboard.type('head -c 37500000 /dev/zero | base64 -w 100; echo flood-$((40+2))\n');
    await waitFor('the end of the flood', async () =>
      /^flood-42\s*$/m.test(await page.evaluate(() => window.rexec.paneText(0))), 300000);
    const seconds = (Date.now() - started) / 1000;
    const gap = await tickProbe.stop(page);
    return { mbps: 50 / seconds, gap };
  } finally {
    await browser.close();
    await sys.stop();
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const builds = [['this', args.server, args.agent]];
if (args['baseline-server']) builds.push(['baseline', args['baseline-server'], args['baseline-agent']]);
const results = Object.fromEntries(builds.map(([name]) => [name, []]));
for (let r = 0; r < rounds; r += 1) {
  for (const [name, server, agent] of r % 2 ? [...builds].reverse() : builds) {
    const x = await flood(server, agent);
    results[name].push(x);
    log(`round ${r + 1} ${name}: ${x.mbps.toFixed(1)} MB/s, longest gap ${x.gap.toFixed(0)} ms`);
  }
}
for (const [name, xs] of Object.entries(results)) {
  log(`${name}: median ${median(xs.map((x) => x.mbps)).toFixed(1)} MB/s, ` +
      `median longest gap ${median(xs.map((x) => x.gap)).toFixed(0)} ms over ${xs.length} runs`);
}
if (results.baseline) {
  const ratio = (f) => median(results.this.map(f)) / median(results.baseline.map(f));
  log(`this / baseline: throughput ${ratio((x) => x.mbps).toFixed(2)}, ` +
      `longest gap ${ratio((x) => x.gap).toFixed(2)}`);
}
