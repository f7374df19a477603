// SPDX-License-Identifier: MIT
// The management views of the web page (docs/web.md): "Add a machine" (a registration token, the
// one-liner, then live progress until the machine is online), an agent's view (charts of the
// last 15 minutes, its sessions, rename/describe/tag/delete, recordings and their playback with
// asciinema-player), API tokens, and the audit log. app.js owns sign-in, the agent list, the
// events hub and the terminals, and hands this module what it needs in init().

let ctx = null;  // from app.js: state, api, $, go, notice, refusalText, formatBytes, ...
const kChartMinutes = 15;
// Events per audit page; settable for tests (window.rexec.manage.auditOptions).
export const auditOptions = { pageSize: 50 };

// Scripts and styles of npm packages built into the server, loaded when a view first needs them.
const loaded = new Map();
function loadScript(src) {
  if (!loaded.has(src)) {
    loaded.set(src, new Promise((resolve, reject) => {
      const el = document.createElement('script');
      el.src = src;
      el.onload = resolve;
      el.onerror = () => { loaded.delete(src); reject(new Error(`cannot load ${src}`)); };
      document.head.append(el);
    }));
  }
  return loaded.get(src);
}

function loadStyle(href) {
  if (document.querySelector(`link[href="${href}"]`)) return;
  const el = document.createElement('link');
  el.rel = 'stylesheet';
  el.href = href;
  document.head.append(el);
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('aria-') || k === 'role') e.setAttribute(k, v);
    else e[k] = v;
  }
  e.append(...children);
  return e;
}

function button(text, onClick, props = {}) {
  const b = el('button', { type: 'button', textContent: text, ...props });
  b.addEventListener('click', onClick);
  return b;
}

function when(t) {
  if (t === null || t === undefined || t === '') return '—';
  const d = typeof t === 'number' ? new Date(t) : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

function age(since) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(since)) / 1000));
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d`;
}

async function copy(text, btn) {
  try {
    await navigator.clipboard.writeText(text);
    btn.textContent = 'Copied';
  } catch {
    btn.textContent = 'Select and copy it';
  }
  setTimeout(() => { btn.textContent = 'Copy'; }, 2000);
}

// A sentence for a refused request; 401 signs out.
function failed(r, what) {
  if (r.status === 401) {
    ctx.signOut('Your session has ended: sign in again.');
    return '';
  }
  return `${what}: ${ctx.refusalText(r.status, r.data)}`;
}

// A confirmation in the page's own dialog (window.confirm cannot be styled or tested well).
function confirmAction(title, text, ok) {
  const dialog = ctx.$('confirm');
  ctx.$('confirm-title').textContent = title;
  ctx.$('confirm-text').textContent = text;
  ctx.$('confirm-ok').textContent = ok;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

export function init(c) {
  ctx = c;
  const $ = ctx.$;
  $('add-form').addEventListener('submit', (ev) => { ev.preventDefault(); createInstallCommand(); });
  $('add-cancel').addEventListener('click', () => $('add-dialog').close());
  $('add-close').addEventListener('click', () => $('add-dialog').close());
  $('add-dialog').addEventListener('close', () => closeAddMachine());
  $('add-copy').addEventListener('click', () => copy($('add-command').textContent, $('add-copy')));
  $('token-copy').addEventListener('click', () => copy($('token-value').textContent, $('token-copy')));
  // The token leaves the page as the dialog closes: at once on Done, and on Escape when the
  // dialog's close event (a queued task) runs.
  const forgetToken = () => { $('token-value').textContent = ''; };
  $('token-done').addEventListener('click', () => { forgetToken(); $('token-dialog').close(); });
  $('token-dialog').addEventListener('close', forgetToken);
  $('token-form').addEventListener('submit', (ev) => { ev.preventDefault(); createToken(); });
  $('token-scopes').addEventListener('change', () => {
    $('token-expiry').disabled = $('token-scopes').value === 'register';
  });
  $('agent-open').addEventListener('click', () => ctx.openWorkspace(agent.id));
  $('agent-edit').addEventListener('click', () => editAgent());
  $('agent-form').addEventListener('submit', (ev) => { ev.preventDefault(); saveAgent(); });
  $('agent-form-cancel').addEventListener('click', () => { $('agent-form').hidden = true; });
  $('agent-delete').addEventListener('click', () => deleteAgent());
  $('recording-mode').addEventListener('change', () => setRecordingMode());
  $('audit-form').addEventListener('submit', (ev) => { ev.preventDefault(); audit.pages = []; loadAudit(); });
  $('audit-reset').addEventListener('click', () => {
    $('audit-form').reset();
    audit.pages = [];
    loadAudit();
  });
  $('audit-older').addEventListener('click', () => {
    if (audit.next === null) return;
    audit.pages.push(audit.next);
    loadAudit();
  });
  $('audit-newer').addEventListener('click', () => {
    audit.pages.pop();
    loadAudit();
  });
  for (const t of kAuditTypes) $('audit-type').append(el('option', { value: t, textContent: t }));
  $('player-play').addEventListener('click', () => togglePlay());
  $('player-seek').addEventListener('input', () => seekTo(Number($('player-seek').value)));
  $('player-speed').addEventListener('change', () => setSpeed(Number($('player-speed').value)));
  $('player-download').addEventListener('click', (ev) => {
    ev.preventDefault();
    downloadRecording(player.agentId, player.name);
  });
  window.addEventListener('resize', () => resizeCharts());
}

// Sign-out: forget everything this module shows.
export function reset() {
  for (const id of ['add-dialog', 'token-dialog', 'confirm', 'help']) {
    if (ctx && ctx.$(id).open) ctx.$(id).close();
  }
  disposeCharts();
  disposePlayer();
  agent.id = null;
  clearInterval(agent.timer);
}

// Called before a new view is shown.
export function leave(next) {
  if (next.view !== 'recording') disposePlayer();
  if (next.view !== 'agent' || next.agentId !== agent.id) {
    disposeCharts();
    clearInterval(agent.timer);
    if (next.view !== 'agent') agent.id = null;
  }
}

export function currentAgent() { return agent.id; }

// The agent list changed (app.js reloaded it).
export function agentsChanged() {
  if (ctx.state.view === 'agent' && agent.id) renderAgentHead();
  fillAuditAgents();
  checkAddProgress();
}

// Every message of the events hub (after app.js has applied it to the agent list).
export function onEvent(m) {
  const id = m.data && m.data.agent_id;
  if (m.type === 'agent_registered' && add.tokenId &&
      m.data.registration_token_id === add.tokenId) {
    add.agentId = id;
    add.name = m.data.name;
    checkAddProgress();
  } else if (m.type === 'agent_connected' || m.type === 'agent_disconnected') {
    checkAddProgress();
    if (id === agent.id) renderAgentHead();
  } else if (m.type === 'agent_stats' && id === agent.id) {
    addSample({ at: Date.now(), ...m.data.stats });
  } else if (m.type === 'agent_sessions' && id === agent.id) {
    renderSessions();
  }
}

// ---------------------------------------------------------------------------------------------
// Add a machine: a registration token (scope "register", an hour, one use), the one-liner, and
// progress from the events hub until the machine is online; then its terminal opens.

const add = { tokenId: null, agentId: null, name: '', done: false };

function shellQuote(s) {
  return /^[A-Za-z0-9._-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function addMachine() {
  const $ = ctx.$;
  Object.assign(add, { tokenId: null, agentId: null, name: '', done: false });
  $('add-form').hidden = false;
  $('add-steps').hidden = true;
  $('add-error').textContent = '';
  $('add-name').value = '';
  $('add-dialog').showModal();
  $('add-name').focus();
}

async function createInstallCommand() {
  const $ = ctx.$;
  const name = $('add-name').value.trim();
  const r = await ctx.api('POST', '/api/tokens', {
    name: `register ${name || 'a machine'}`, scopes: ['register'], expires_in_minutes: 60,
  });
  if (r.status !== 201 || !r.data || !r.data.token) {
    $('add-error').textContent = failed(r, 'No registration token');
    $('add-steps').hidden = false;
    return;
  }
  add.tokenId = r.data.id;
  const token = r.data.token;
  const server = location.origin;
  const nameArg = name ? ` --name ${shellQuote(name)}` : '';
  $('add-command').textContent =
    `curl -fsSL ${server}/install-agent.sh | sh -s -- --token ${token}${nameArg}`;
  $('add-deb').textContent =
    `printf '%s\\n' ${token} | sudo rexec-agent register --server ${server} --token-stdin${nameArg}\n` +
    'sudo systemctl enable --now rexec-agent';
  $('add-manual').textContent =
    `curl -fsSLo rexec-agent ${server}/downloads/rexec-agent-linux-amd64\n` +
    `curl -fsSL ${server}/downloads/rexec-agent-linux-amd64.sha256; sha256sum rexec-agent\n` +
    'chmod +x rexec-agent\n' +
    `printf '%s\\n' ${token} | ./rexec-agent register --server ${server} --token-stdin${nameArg}\n` +
    './rexec-agent run';
  const until = new Date(Date.parse(r.data.expires_at)).toLocaleTimeString();
  $('add-token-note').textContent = `The token in it registers one machine, once, until ${until}. ` +
    'This page does not keep it: close this and it is revoked unless it was used.';
  $('add-form').hidden = true;
  $('add-steps').hidden = false;
  setStep('add-step-token', 'done', `Registration token created (${r.data.token_prefix}…)`);
  setStep('add-step-register', 'waiting', 'Waiting for the machine to register…');
  setStep('add-step-online', 'pending', 'Then for it to connect…');
  $('add-copy').focus();
}

function setStep(id, stateName, text) {
  const li = ctx.$(id);
  li.dataset.state = stateName;
  li.textContent = text;
}

function checkAddProgress() {
  if (!add.agentId || add.done || !ctx.$('add-dialog').open) return;
  const a = ctx.state.agents.get(add.agentId);
  setStep('add-step-register', 'done', `Registered as ${add.name || (a && a.name) || add.agentId}`);
  if (!a || a.status !== 'online') {
    setStep('add-step-online', 'waiting', 'Waiting for it to connect…');
    return;
  }
  add.done = true;
  setStep('add-step-online', 'done', `${a.name} is online: opening its terminal`);
  setTimeout(() => {
    if (ctx.$('add-dialog').open) ctx.$('add-dialog').close();
    ctx.openWorkspace(a.id);
  }, 800);
}

function closeAddMachine() {
  const $ = ctx.$;
  // The token leaves the page; unused, it is revoked.
  for (const id of ['add-command', 'add-deb', 'add-manual']) $(id).textContent = '';
  if (add.tokenId && !add.agentId && ctx.state.session) {
    ctx.api('DELETE', `/api/tokens/${encodeURIComponent(add.tokenId)}`);
  }
  add.tokenId = null;
}

// ---------------------------------------------------------------------------------------------
// Tokens: list, create (shown once), revoke (with a confirmation).

export async function showTokens() {
  const r = await ctx.api('GET', '/api/tokens');
  if (r.status !== 200 || !Array.isArray(r.data)) {
    ctx.$('token-form-error').textContent = failed(r, 'Cannot list the tokens');
    return;
  }
  const body = ctx.$('tokens').tBodies[0];
  body.replaceChildren();
  const now = Date.now();
  const tokens = [...r.data].sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  for (const t of tokens) {
    const expired = t.expires_at && Date.parse(t.expires_at) <= now;
    const stateText = t.revoked_at ? `revoked ${when(t.revoked_at)}` : expired ? 'expired' : 'active';
    const actions = el('td');
    if (!t.revoked_at && !expired) {
      actions.append(button('Revoke', () => revokeToken(t), {
        className: 'danger', 'aria-label': `Revoke ${t.name}`,
      }));
    }
    body.append(el('tr', { dataset: { tokenId: t.id, state: t.revoked_at ? 'revoked' : expired ? 'expired' : 'active' } },
      el('td', { textContent: t.name }),
      el('td', {}, el('code', { textContent: `${t.token_prefix}…` })),
      el('td', { textContent: (t.scopes || []).join(', ') }),
      el('td', { textContent: when(t.created_at) }),
      el('td', { textContent: t.last_used_at ? when(t.last_used_at) : 'never' }),
      el('td', { textContent: t.expires_at ? when(t.expires_at) : 'never' }),
      el('td', { textContent: stateText }),
      actions));
  }
}

async function createToken() {
  const $ = ctx.$;
  $('token-form-error').textContent = '';
  const scopes = $('token-scopes').value.split(',');
  const body = { name: $('token-name').value.trim(), scopes };
  if (scopes[0] === 'register') body.expires_in_minutes = 60;
  else if ($('token-expiry').value) body.expires_in = Number($('token-expiry').value);
  const r = await ctx.api('POST', '/api/tokens', body);
  if (r.status !== 201 || !r.data || !r.data.token) {
    // A web session creates lasting tokens only soon after its sign-in (docs/security.md).
    $('token-form-error').textContent = r.status === 403 && r.data && r.data.code === 'fresh_sign_in_required'
      ? 'For your safety, a new API token needs a recent sign-in: sign out, sign in again with ' +
        'an API token, then create it within 15 minutes.'
      : failed(r, 'The token was not created');
    return;
  }
  $('token-form').reset();
  $('token-expiry').disabled = false;
  $('token-value').textContent = r.data.token;
  $('token-dialog-info').textContent = `${r.data.name}: ${r.data.scopes.join(', ')}; ` +
    `expires ${r.data.expires_at ? when(r.data.expires_at) : 'never'}.`;
  $('token-dialog').showModal();
  $('token-copy').focus();
  showTokens();
}

async function revokeToken(t) {
  const ok = await confirmAction(`Revoke the token "${t.name}"?`,
    `Anything that uses ${t.token_prefix}… is refused from now on. This cannot be undone.`,
    'Revoke');
  if (!ok) return;
  const r = await ctx.api('DELETE', `/api/tokens/${encodeURIComponent(t.id)}`);
  if (r.status !== 200) {
    ctx.$('token-form-error').textContent = failed(r, 'The token was not revoked');
    return;
  }
  ctx.notice(`Token "${t.name}" revoked.`, 'transient');
  showTokens();
}

// ---------------------------------------------------------------------------------------------
// The agent view: header, charts, sessions, recordings.

const agent = { id: null, samples: [], charts: [], timer: 0, generation: 0 };

export async function showAgent(id) {
  const $ = ctx.$;
  const fresh = agent.id !== id;
  agent.id = id;
  const generation = ++agent.generation;
  $('agent-form').hidden = true;
  renderAgentHead();
  renderSessions();
  if (fresh) {
    agent.samples = [];
    buildCharts();
  }
  clearInterval(agent.timer);
  agent.timer = setInterval(() => renderSessions(), 15000);  // the ages
  const [stats, sessions] = await Promise.all([
    ctx.api('GET', `/api/agents/${encodeURIComponent(id)}/stats?minutes=${kChartMinutes}`),
    ctx.api('GET', `/api/agents/${encodeURIComponent(id)}/sessions`),
  ]);
  if (generation !== agent.generation) return;
  if (stats.status === 200 && Array.isArray(stats.data.samples)) {
    agent.samples = stats.data.samples;
    await drawCharts();
  } else if (stats.status === 404) {
    ctx.notice('No such agent (deleted?).', 'transient');
    ctx.go('#/');
    return;
  }
  const a = ctx.state.agents.get(id);
  if (a && sessions.status === 200 && Array.isArray(sessions.data.sessions)) {
    a.sessions = sessions.data.sessions;
    ctx.renderAgents();
    renderSessions();
  }
  loadRecordings(id, generation);
}

function renderAgentHead() {
  const $ = ctx.$;
  const a = ctx.state.agents.get(agent.id);
  if (!a) {
    $('agent-title').textContent = 'Agent';
    $('agent-status').textContent = '';
    return;
  }
  $('agent-title').textContent = a.name;
  $('agent-status').textContent = a.status;
  $('agent-status').dataset.status = a.status;
  const info = a.system_info || {};
  const parts = [info.hostname, [a.os, a.arch].filter(Boolean).join('/'), info.distro || a.distro,
    info.num_cpu ? `${info.num_cpu} CPU` : '',
    info.memory && info.memory.total ? `${ctx.formatBytes(info.memory.total)} memory` : '',
    info.agent_version ? `agent ${info.agent_version}` : ''].filter(Boolean);
  $('agent-info').textContent = [a.description, parts.join(' · ')].filter(Boolean).join(' — ');
  $('agent-tags').replaceChildren(...(a.tags || []).map((t) => el('span', { className: 'tag', textContent: t })));
}

function editAgent() {
  const $ = ctx.$;
  const a = ctx.state.agents.get(agent.id);
  if (!a) return;
  $('agent-name').value = a.name;
  $('agent-description').value = a.description || '';
  $('agent-tags-input').value = (a.tags || []).join(', ');
  $('agent-form-error').textContent = '';
  $('agent-form').hidden = false;
  $('agent-name').focus();
}

async function saveAgent() {
  const $ = ctx.$;
  const tags = $('agent-tags-input').value.split(',').map((t) => t.trim()).filter(Boolean);
  const r = await ctx.api('PATCH', `/api/agents/${encodeURIComponent(agent.id)}`, {
    name: $('agent-name').value.trim(), description: $('agent-description').value.trim(), tags,
  });
  if (r.status !== 200) {
    $('agent-form-error').textContent = failed(r, 'Not saved');
    return;
  }
  $('agent-form').hidden = true;
  await ctx.refreshAgents();
  $('agent-edit').focus();
}

async function deleteAgent() {
  const a = ctx.state.agents.get(agent.id);
  if (!a) return;
  const ok = await confirmAction(`Delete ${a.name}?`,
    'Its token is revoked, so the machine can no longer connect; its terminals close and its ' +
    'recordings are deleted. The audit log keeps its history.', 'Delete');
  if (!ok) return;
  const r = await ctx.api('DELETE', `/api/agents/${encodeURIComponent(a.id)}`);
  if (r.status !== 200) {
    ctx.notice(failed(r, `${a.name} was not deleted`), 'transient');
    return;
  }
  ctx.notice(`${a.name} deleted.`, 'transient');
  for (const p of [...ctx.state.panes]) if (p.agentId === a.id) p.dispose();
  ctx.state.panes = ctx.state.panes.filter((p) => p.agentId !== a.id);
  if (ctx.state.agentId === a.id) ctx.state.agentId = null;
  ctx.go('#/');
  ctx.refreshAgents();
}

// Charts: uPlot (npm "uplot", 51 KB minified), one small chart each for CPU, memory and disk, in
// percent, from GET /api/agents/:id/stats, then live from agent_stats.
const kCharts = [
  { key: 'cpu', label: 'CPU', color: '#4fa3ff', value: (s) => s.cpu_percent,
    text: (s) => `${Number(s.cpu_percent).toFixed(1)}%` },
  { key: 'memory', label: 'Memory', color: '#3fb950',
    value: (s) => (s.memory_limit > 0 ? (100 * s.memory) / s.memory_limit : null),
    text: (s) => `${ctx.formatBytes(s.memory)} of ${ctx.formatBytes(s.memory_limit)}` },
  { key: 'disk', label: 'Disk', color: '#d29922',
    value: (s) => (s.disk_limit > 0 ? (100 * s.disk_usage) / s.disk_limit : null),
    text: (s) => `${ctx.formatBytes(s.disk_usage)} of ${ctx.formatBytes(s.disk_limit)}` },
];

function buildCharts() {
  disposeCharts();
  const host = ctx.$('charts');
  host.replaceChildren();
  for (const c of kCharts) {
    const plot = el('div', { className: 'plot', role: 'img', 'aria-label': `${c.label}: no data yet` });
    const caption = el('figcaption', {}, el('strong', { textContent: c.label }), ' ',
      el('span', { className: 'now', textContent: '…' }));
    const figure = el('figure', { className: 'chart', dataset: { chart: c.key } }, caption, plot);
    host.append(figure);
    agent.charts.push({ spec: c, figure, plot, u: null });
  }
}

function chartData(c) {
  const since = Date.now() / 1000 - kChartMinutes * 60;
  const xs = [];
  const ys = [];
  for (const s of agent.samples) {
    const v = c.spec.value(s);
    if (typeof v !== 'number' || !Number.isFinite(v) || s.at / 1000 < since) continue;
    xs.push(s.at / 1000);
    ys.push(Math.round(v * 10) / 10);
  }
  return [xs, ys];
}

async function drawCharts() {
  if (agent.charts.length === 0) return;
  try {
    loadStyle('/static/uplot.css');
    await loadScript('/static/uplot.js');
  } catch {
    ctx.$('charts').replaceChildren(el('p', { className: 'hint',
      textContent: 'This server was built without uPlot: no charts (npm ci --prefix web).' }));
    agent.charts = [];
    return;
  }
  const last = agent.samples[agent.samples.length - 1];
  for (const c of agent.charts) {
    const data = chartData(c);
    if (!c.u) {
      const width = Math.max(200, c.figure.clientWidth - 8);
      c.u = new window.uPlot({
        width, height: 110,
        legend: { show: false },
        cursor: { show: true, drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: [0, 100] } },
        axes: [
          { stroke: '#a8b3bf', grid: { stroke: '#2a313a' }, ticks: { stroke: '#2a313a' } },
          { stroke: '#a8b3bf', grid: { stroke: '#2a313a' }, ticks: { stroke: '#2a313a' },
            splits: () => [0, 50, 100], values: (u, vals) => vals.map((v) => `${v}%`), size: 52 },
        ],
        series: [{}, { label: c.spec.label, stroke: c.spec.color, width: 2, fill: `${c.spec.color}22`,
          points: { show: data[0].length < 3, size: 5 } }],
      }, data, c.plot);
    } else {
      c.u.setData(data);
    }
    const now = last && typeof c.spec.value(last) === 'number' ? c.spec.text(last) : 'no data';
    c.figure.querySelector('.now').textContent = now;
    c.plot.setAttribute('aria-label', `${c.spec.label} over the last ${kChartMinutes} minutes: ` +
      `${data[0].length} samples, now ${now}`);
    c.figure.dataset.points = String(data[0].length);
  }
}

function addSample(sample) {
  if (agent.charts.length === 0) return;
  agent.samples.push(sample);
  const since = Date.now() - kChartMinutes * 60000;
  while (agent.samples.length > 0 && agent.samples[0].at < since) agent.samples.shift();
  drawCharts();
}

function resizeCharts() {
  for (const c of agent.charts) {
    if (c.u) c.u.setSize({ width: Math.max(200, c.figure.clientWidth - 8), height: 110 });
  }
}

function disposeCharts() {
  for (const c of agent.charts) if (c.u) c.u.destroy();
  agent.charts = [];
}

function renderSessions() {
  const $ = ctx.$;
  const a = agent.id && ctx.state.agents.get(agent.id);
  const body = $('sessions').tBodies[0];
  body.replaceChildren();
  const sessions = a && Array.isArray(a.sessions) ? a.sessions : [];
  $('sessions-empty').hidden = sessions.length > 0;
  $('sessions').hidden = sessions.length === 0;
  for (const s of sessions) {
    const viewers = s.viewers || [];
    const oldest = viewers.map((v) => v.since).sort()[0];
    const viewersText = viewers.length === 0
      ? (s.lingering ? 'none (kept running for a while)' : 'none')
      : `${viewers.length} (the first for ${age(oldest)})`;
    const actions = el('td', { className: 'actions' },
      button('Attach', () => ctx.openWorkspace(a.id, s.id), { 'aria-label': `Attach to ${s.id}` }),
      button('End', () => endSession(a, s.id), { className: 'danger', 'aria-label': `End ${s.id}` }));
    body.append(el('tr', { dataset: { session: s.id } },
      el('td', {}, el('code', { textContent: s.id })),
      el('td', { textContent: s.shell ? 'running' : 'starting or stopped' }),
      el('td', { textContent: viewersText }),
      el('td', { textContent: age(s.started_at), title: when(s.started_at) }),
      actions));
  }
}

async function endSession(a, sid) {
  const ok = await confirmAction(`End ${sid} on ${a.name}?`,
    'Its shell and everything it runs are stopped, and every terminal viewing it says so.', 'End session');
  if (!ok) return;
  const r = await ctx.api('DELETE',
    `/api/agents/${encodeURIComponent(a.id)}/sessions/${encodeURIComponent(sid)}`);
  if (r.status !== 200) ctx.notice(failed(r, `${sid} was not ended`), 'transient');
}

// Recordings: the policy, the list, and links to the player.
let policyEdits = 0;  // choices saved by setRecordingMode: a load begun before one is stale

async function loadRecordings(id, generation) {
  const $ = ctx.$;
  const base = `/api/agents/${encodeURIComponent(id)}`;
  const edits = policyEdits;
  const [policy, list] = await Promise.all([
    ctx.api('GET', `${base}/recording`), ctx.api('GET', `${base}/recordings`)]);
  if (generation !== agent.generation) return;
  if (policy.status === 200 && policy.data && edits === policyEdits) {
    $('recording-mode').value = policy.data.mode;
    $('recording-mode').disabled = !policy.data.available;
    $('recording-mode-status').textContent = policy.data.available ? ''
      : 'Recording is not configured on this server (--recordings-dir).';
  }
  const body = $('recordings').tBodies[0];
  body.replaceChildren();
  const recordings = list.status === 200 && list.data && Array.isArray(list.data.recordings)
    ? list.data.recordings : [];
  $('recordings-empty').hidden = recordings.length > 0;
  $('recordings').hidden = recordings.length === 0;
  for (const rec of recordings) {
    const play = el('a', { href: `#/agent/${encodeURIComponent(id)}/recording/${encodeURIComponent(rec.name)}`,
      textContent: 'Play', 'aria-label': `Play the recording of ${rec.session_id} from ${when(rec.started_at)}` });
    body.append(el('tr', { dataset: { name: rec.name } },
      el('td', {}, el('code', { textContent: rec.session_id })),
      el('td', { textContent: when(rec.started_at) }),
      el('td', { textContent: ctx.formatBytes(rec.bytes) }),
      el('td', { className: 'actions' }, play, ' ',
        button('Download', () => downloadRecording(id, rec.name),
          { 'aria-label': `Download the recording of ${rec.session_id}` }))));
  }
}

async function setRecordingMode() {
  const $ = ctx.$;
  const mode = $('recording-mode').value;
  policyEdits += 1;
  const r = await ctx.api('PUT', `/api/agents/${encodeURIComponent(agent.id)}/recording`, { mode });
  $('recording-mode-status').textContent = r.status === 200
    ? `Saved: ${mode}. It applies to terminals opened from now on.`
    : failed(r, 'Not saved');
}

async function fetchRecording(agentId, name) {
  const url = `/api/agents/${encodeURIComponent(agentId)}/recordings/${encodeURIComponent(name)}`;
  try {
    const r = await fetch(url, { headers: { Authorization: `Bearer ${ctx.state.session.token}` } });
    if (r.status !== 200) {
      let data = null;
      try { data = await r.json(); } catch { /* not JSON */ }
      return { status: r.status, data };
    }
    return { status: 200, text: await r.text() };
  } catch {
    return { status: 0, data: { error: 'the server cannot be reached' } };
  }
}

async function downloadRecording(agentId, name) {
  const r = await fetchRecording(agentId, name);
  if (r.status !== 200) {
    ctx.notice(failed(r, 'The recording was not downloaded'), 'transient');
    return;
  }
  ctx.saveBlob(new Blob([r.text], { type: 'application/x-asciicast' }), name);
}

// ---------------------------------------------------------------------------------------------
// Playback: asciinema-player (npm "asciinema-player", built in), with the page's own controls
// (a button, a slider and a speed menu that the keyboard reaches) in place of its control bar.

const player = { agentId: null, name: null, text: null, p: null, speed: 1, ended: false, timer: 0 };

export async function showRecording(agentId, name) {
  const $ = ctx.$;
  disposePlayer();
  Object.assign(player, { agentId, name, text: null, ended: false });
  $('recording-title').textContent = `Recording ${name}`;
  $('recording-back').href = `#/agent/${encodeURIComponent(agentId)}`;
  $('player-status').textContent = 'Loading…';
  $('player').replaceChildren();
  const [r] = await Promise.all([fetchRecording(agentId, name),
    loadScript('/static/asciinema-player.js').catch(() => null)]);
  if (player.name !== name) return;
  if (!window.AsciinemaPlayer) {
    $('player-status').textContent =
      'This server was built without asciinema-player (npm ci --prefix web).';
    return;
  }
  loadStyle('/static/asciinema-player.css');
  if (r.status !== 200) {
    $('player-status').textContent = failed(r, 'Cannot load the recording');
    return;
  }
  player.text = r.text;
  createPlayer(0, false);
}

function createPlayer(startAt, play) {
  const $ = ctx.$;
  if (player.p) player.p.dispose();
  clearInterval(player.timer);
  const host = $('player');
  host.replaceChildren();
  player.p = window.AsciinemaPlayer.create({ data: player.text }, host, {
    controls: false, autoPlay: play, speed: player.speed, startAt, fit: false, terminalFontSize: '14px',
    terminalFontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
  });
  player.ended = false;
  const p = player.p;
  p.addEventListener('play', () => { $('player-play').textContent = 'Pause'; tick(); });
  p.addEventListener('playing', () => { $('player-play').textContent = 'Pause'; });
  p.addEventListener('pause', () => { $('player-play').textContent = 'Play'; tick(); });
  p.addEventListener('ended', () => {
    player.ended = true;
    $('player-play').textContent = 'Play again';
    $('player-status').textContent = 'Played to the end.';
    tick();
  });
  $('player-status').textContent = play ? 'Playing…' : 'Ready: press Play.';
  player.timer = setInterval(tick, 250);
  setTimeout(tick, 100);
}

function clock(t) {
  const s = Math.max(0, Math.floor(t || 0));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function tick() {
  const p = player.p;
  if (!p) return;
  const duration = p.getDuration() || 0;
  const at = player.ended ? duration : Math.min(p.getCurrentTime() || 0, duration);
  const seek = ctx.$('player-seek');
  seek.max = String(duration);
  if (document.activeElement !== seek) seek.value = String(at);
  seek.setAttribute('aria-valuetext', `${clock(at)} of ${clock(duration)}`);
  ctx.$('player-time').textContent = `${clock(at)} / ${clock(duration)}`;
}

async function togglePlay() {
  const p = player.p;
  if (!p) return;
  if (player.ended) {
    createPlayer(0, true);
    return;
  }
  if (ctx.$('player-play').textContent === 'Pause') {
    await p.pause();
  } else {
    ctx.$('player-status').textContent = 'Playing…';
    await p.play();
  }
}

async function seekTo(t) {
  if (!player.p) return;
  player.ended = false;
  await player.p.seek(t);
  tick();
}

// asciinema-player takes its speed when it is created: a new one starts where this one was.
function setSpeed(speed) {
  if (!player.p) return;
  const playing = ctx.$('player-play').textContent === 'Pause';
  const at = player.ended ? 0 : player.p.getCurrentTime() || 0;
  player.speed = speed;
  createPlayer(at, playing);
}

function disposePlayer() {
  clearInterval(player.timer);
  if (player.p) player.p.dispose();
  player.p = null;
  player.name = null;
  player.text = null;
}

// ---------------------------------------------------------------------------------------------
// Audit: GET /api/audit with its filters, 50 a page, newest first.

const kAuditTypes = [
  'agent_registered', 'agent_deleted', 'agent_connected', 'agent_disconnected',
  'terminal_opened', 'terminal_closed', 'session_ended', 'exec_run', 'file_transferred',
  'mfa_locked', 'mfa_unlocked', 'mfa_verified', 'mfa_refused', 'token_created',
  'token_revoked', 'limit_refused', 'recording_policy',
];

const audit = { pages: [], next: null };

function fillAuditAgents() {
  const select = ctx.$('audit-agent');
  const chosen = select.value;
  select.replaceChildren(el('option', { value: '', textContent: 'any' }));
  for (const a of ctx.state.agents.values()) {
    select.append(el('option', { value: a.id, textContent: a.name }));
  }
  select.value = chosen;
}

export function showAudit() {
  fillAuditAgents();
  audit.pages = [];
  loadAudit();
}

async function loadAudit() {
  const $ = ctx.$;
  const q = new URLSearchParams({ limit: String(auditOptions.pageSize) });
  if ($('audit-type').value) q.set('type', $('audit-type').value);
  if ($('audit-agent').value) q.set('agent_id', $('audit-agent').value);
  if ($('audit-user').value.trim()) q.set('user_id', $('audit-user').value.trim());
  const since = Date.parse($('audit-since').value);
  const until = Date.parse($('audit-until').value);
  if (Number.isFinite(since)) q.set('since', String(since));
  if (Number.isFinite(until)) q.set('until', String(until));
  const before = audit.pages[audit.pages.length - 1];
  if (before) q.set('before', String(before));
  const r = await ctx.api('GET', `/api/audit?${q}`);
  if (r.status !== 200 || !r.data || !Array.isArray(r.data.events)) {
    $('audit-error').textContent = failed(r, 'Cannot read the audit log');
    return;
  }
  $('audit-error').textContent = '';
  audit.next = r.data.next_before;
  const me = ctx.state.session.user && ctx.state.session.user.id;
  const body = $('audit').tBodies[0];
  body.replaceChildren();
  for (const e of r.data.events) {
    const a = e.agent_id && ctx.state.agents.get(e.agent_id);
    const details = JSON.stringify(e.details || {});
    body.append(el('tr', { dataset: { type: e.type } },
      el('td', { textContent: when(e.at) }),
      el('td', {}, el('code', { textContent: e.type })),
      el('td', { textContent: a ? a.name : e.agent_id ? `${e.agent_id.slice(0, 8)}…` : '—',
        title: e.agent_id || '' }),
      el('td', { textContent: e.user_id === me ? 'you' : e.user_id ? `${e.user_id.slice(0, 8)}…` : '—',
        title: e.user_id || '' }),
      el('td', { textContent: e.session_id || '—' }),
      el('td', { className: 'details', textContent: details.length > 160 ? `${details.slice(0, 160)}…` : details,
        title: details })));
  }
  const page = audit.pages.length + 1;
  $('audit-page').textContent = r.data.events.length === 0 ? 'No events match.'
    : `Page ${page}: ${r.data.events.length} event${r.data.events.length === 1 ? '' : 's'}`;
  $('audit-newer').disabled = audit.pages.length === 0;
  $('audit-older').disabled = audit.next === null;
}

// For tests: what the charts hold.
export function chartPoints() {
  return Object.fromEntries(agent.charts.map((c) => [c.spec.key, c.u ? c.u.data[0].length : 0]));
}
