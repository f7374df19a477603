// SPDX-License-Identifier: MIT
// The rexec web terminal (docs/web.md). Signs in with an API token, which it exchanges for a
// short-lived JWT kept in sessionStorage (the API token itself is never stored); lists the
// user's agents with live status and stats from the events hub; opens terminals on `main` and
// `split-<id>` sessions over the v2 protocol (binary frames), with resize, reconnect with replay
// (&offset=N), the MFA prompt and a clear text for every documented refusal; uploads files to
// and downloads them from the agent. The management views (add a machine, an agent's charts,
// sessions and recordings, tokens, audit) are in manage.js.

import * as manage from './manage.js';

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();
const kSessionKey = 'rexec.session';
const kMaxInFlight = 4 << 20;  // bytes handed to xterm.js and not yet parsed
// Output waiting to be drawn: above `high` a v2 pane asks the server to pause its session
// ({"type":"flow"}, docs/protocol.md), below `low` to resume. Settable for tests.
const flowMarks = { high: 8 << 20, low: 2 << 20 };
// A hidden tab draws nothing (no animation frames) and does not hold its shell up: it keeps the
// newest output (at most this much, and no more lines than the terminal keeps) and says how much
// it skipped.
const kHiddenKeep = 4 << 20;
const kRetryCapMs = 15000;
// A download is held in memory until it is saved; its sha256 (shown to compare with the
// agent's file) costs one more copy, so it is skipped above this size.
const kDigestMax = 256 << 20;  // bytes

let xterm = null;  // { Terminal, FitAddon, SearchAddon, WebLinksAddon } once loaded
const kEndWarningMs = 5 * 60000;  // before the sign-in's maximum life ends
const state = {
  session: null,       // { token, expires_at, session_ends_at, user }
  agents: new Map(),   // id → agent object (+ .stats, + .sessions: the hub's list)
  events: null,        // the events-hub WebSocket
  eventsRetry: 0,
  agentId: null,       // the agent the workspace shows
  panes: [],
  view: 'workspace',   // the section of <main> shown (from location.hash)
};

// ---------------------------------------------------------------------------------------------
// Plumbing

function wsUrl(path) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function backoff(attempt) {
  const cap = Math.min(kRetryCapMs, 500 * 2 ** attempt);
  return cap / 2 + Math.random() * (cap / 2);
}

// `kind` names who said it, so that one part of the page clears only its own notices.
function notice(text, kind = '') {
  const el = $('notice');
  el.textContent = text || '';
  el.hidden = !text;
  el.dataset.kind = kind;
}

function formatBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

// The text for a refusal the server documents (PROTOCOL §2, §4, docs/protocol.md).
function refusalText(status, body) {
  const error = body && typeof body.error === 'string' ? body.error : '';
  const code = body && body.code;
  if (status === 401) return 'Not signed in, or the session has expired: sign in again.';
  if (status === 403 && error === 'not authorized') return 'This agent belongs to another user.';
  if (status === 403 && code === 'agent_terminal_limit_reached') {
    return body.limit !== undefined
      ? `Your plan allows terminals on ${body.limit} agents at once: close one first.`
      : 'Your plan does not include terminals.';
  }
  if (status === 403 && code === 'session_limit_reached') {
    return `This agent already runs its limit of ${body.limit} sessions: close one first.`;
  }
  if (status === 403 && error === 'origin not allowed') {
    return 'The server refused this page\'s origin (check --allowed-origin).';
  }
  if (status === 404 && error === 'agent not online') return 'The agent is offline.';
  if (status === 404) return 'No such agent (deleted?).';
  if (status === 423) return 'This terminal is MFA protected.';
  if (status === 429 && code === 'socket_limit_reached') {
    return `Too many open terminals (limit ${body.limit}): close some first.`;
  }
  if (status === 429) {
    return `Too many requests: wait ${body && body.retry_after ? body.retry_after : 'a few'} s.`;
  }
  return error ? `The server said: ${error} (${status}).` : `The server answered ${status}.`;
}

async function api(method, path, body, token = state.session && state.session.token) {
  if (!token) return { status: 401, data: { error: 'not signed in' } };
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    return { status: 0, data: { error: 'the server cannot be reached' } };
  }
  let data = null;
  try { data = await response.json(); } catch { /* not JSON */ }
  return { status: response.status, data };
}

// ---------------------------------------------------------------------------------------------
// Sign-in

function loadSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(kSessionKey) || 'null');
    if (s && s.token && Date.parse(s.expires_at) > Date.now() + 5000) return s;
  } catch { /* damaged: sign in again */ }
  sessionStorage.removeItem(kSessionKey);
  return null;
}

async function signIn(apiToken) {
  const r = await api('POST', '/api/auth/token', undefined, apiToken.trim());
  if (r.status !== 200) {
    if (r.status === 401) return 'That token is not valid (mistyped, expired or revoked).';
    if (r.status === 0) return 'The server cannot be reached.';
    return refusalText(r.status, r.data);
  }
  state.session = r.data;
  sessionStorage.setItem(kSessionKey, JSON.stringify(r.data));
  return '';
}

function signOut(message) {
  sessionStorage.removeItem(kSessionKey);
  state.session = null;
  for (const p of [...state.panes]) p.dispose();
  state.panes = [];
  if (state.events) {
    state.events.onclose = null;
    state.events.close(1000);
    state.events = null;
  }
  clearTimeout(state.expiryTimer);
  clearTimeout(state.renewTimer);
  clearTimeout(state.endWarningTimer);
  notice('');
  manage.reset();
  dismissFiles();
  state.agents.clear();
  showSignIn(message);
}

function showSignIn(message) {
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('nav').hidden = true;
  $('help-open').hidden = true;
  $('who').textContent = '';
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message || '';
  $('token').focus();
}

// The JWT is renewed with itself a few minutes before it expires, until the server's maximum
// session life (--web-session-max) after the sign-in; then the page asks for the token again.
function scheduleSession() {
  clearTimeout(state.expiryTimer);
  clearTimeout(state.renewTimer);
  const left = Date.parse(state.session.expires_at) - Date.now();
  state.expiryTimer = setTimeout(
    () => signOut('Your session has ended: sign in again (open terminals were closed).'),
    Math.max(0, left));
  state.renewTimer = setTimeout(renewSession, Math.max(0, left - Math.min(5 * 60000, left / 2)));
  // The sign-in's maximum life (--web-session-max): no renewal goes past it, so say so before.
  clearTimeout(state.endWarningTimer);
  const ends = Date.parse(state.session.session_ends_at || '');
  if (Number.isFinite(ends)) {
    state.endWarningTimer = setTimeout(() => {
      if (!state.session) return;
      const at = new Date(ends).toLocaleTimeString();
      const minutes = Math.max(1, Math.round((ends - Date.now()) / 60000));
      notice(`Your sign-in ends at ${at} (in ${minutes} minute${minutes === 1 ? '' : 's'}): ` +
        'open terminals will close then. Sign out and sign in again with your API token to go on.',
        'session-end');
    }, Math.max(0, ends - Date.now() - kEndWarningMs));
  }
}

async function renewSession() {
  if (!state.session) return;
  const r = await api('POST', '/api/auth/token');
  if (!state.session) return;
  if (r.status === 200 && r.data && r.data.token) {
    state.session = {
      ...r.data,
      user: r.data.user || state.session.user,
      session_ends_at: r.data.session_ends_at || state.session.session_ends_at,
    };
    sessionStorage.setItem(kSessionKey, JSON.stringify(state.session));
    scheduleSession();
  } else if (r.status === 0 || r.status === 429 || r.status >= 500) {
    state.renewTimer = setTimeout(renewSession, 20000);  // the expiry timer stays armed
  } else {
    const at = new Date(state.session.expires_at).toLocaleTimeString();
    notice(`Your session ends at ${at}: sign in again then.`);
  }
}

async function showApp() {
  $('sign-in').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  $('nav').hidden = false;
  $('help-open').hidden = false;
  const u = state.session.user;
  $('who').textContent = `${u.username} (${u.tier}${u.is_admin ? ', admin' : ''})`;
  scheduleSession();
  await refreshAgents();
  connectEvents();
  route();
}

// ---------------------------------------------------------------------------------------------
// Views: #/ (the terminals), #/agent/ID, #/agent/ID/recording/NAME, #/tokens, #/audit.

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'agent' && parts[1]) {
    if (parts[2] === 'recording' && parts[3]) {
      return { view: 'recording', agentId: parts[1], name: parts[3] };
    }
    return { view: 'agent', agentId: parts[1] };
  }
  if (parts[0] === 'tokens' || parts[0] === 'audit') return { view: parts[0] };
  return { view: 'workspace' };
}

function showView(name) {
  state.view = name;
  for (const el of document.querySelectorAll('#main > .view')) {
    el.hidden = el.id !== `view-${name}`;
  }
  const navName = name === 'agent' || name === 'recording' ? 'workspace' : name;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === navName) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (name === 'workspace') for (const p of state.panes) p.fit();
}

function route() {
  if (!state.session) return;
  const r = parseHash();
  manage.leave(r);
  showView(r.view);
  if (r.view === 'agent') manage.showAgent(r.agentId);
  else if (r.view === 'recording') manage.showRecording(r.agentId, r.name);
  else if (r.view === 'tokens') manage.showTokens();
  else if (r.view === 'audit') manage.showAudit();
  renderAgents();
}

function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

// ---------------------------------------------------------------------------------------------
// Agents and the events hub

async function refreshAgents() {
  const r = await api('GET', '/api/agents');
  if (r.status === 401) { signOut('Your session has ended: sign in again.'); return; }
  if (r.status !== 200 || !Array.isArray(r.data)) {
    notice(`Cannot list agents: ${refusalText(r.status, r.data)}`, 'agents');
    return;
  }
  if (['agents', 'transient'].includes($('notice').dataset.kind)) notice('');
  const seen = new Set();
  for (const a of r.data) {
    const old = state.agents.get(a.id);
    state.agents.set(a.id, {
      ...a, stats: old ? old.stats : null, sessions: old ? old.sessions : null,
    });
    seen.add(a.id);
  }
  for (const id of [...state.agents.keys()]) if (!seen.has(id)) state.agents.delete(id);
  renderAgents();
  manage.agentsChanged();
}

// The session count: the hub's sessions of the agent (live, from agent_sessions), else the
// agent's own count of its shells (stats, every few seconds).
function sessionCount(a) {
  if (Array.isArray(a.sessions)) return a.sessions.length;
  return a.stats && typeof a.stats.sessions === 'number' ? a.stats.sessions : null;
}

function statsText(a) {
  const lines = [];
  const info = a.system_info;
  if (info && info.hostname) {
    lines.push(`${info.hostname} · ${info.num_cpu} CPU · ${formatBytes(info.memory && info.memory.total)}`);
  }
  const s = a.stats;
  if (s && a.status === 'online') {
    lines.push(`cpu ${Number(s.cpu_percent).toFixed(0)}% · mem ${formatBytes(s.memory)} / ` +
               `${formatBytes(s.memory_limit)} · disk ${formatBytes(s.disk_usage)} / ` +
               `${formatBytes(s.disk_limit)}`);
  }
  return lines.join('\n');
}

// Each card is made once and then updated in place: the list changes every few seconds (stats),
// and a rebuilt list would take the keyboard focus, and the pointer's target, away.
const cards = new Map();  // agent id → { li, name, status, sessions, stats, open, details }

function makeCard(id) {
  const c = {};
  c.li = document.createElement('li');
  c.li.dataset.agentId = id;
  c.name = document.createElement('div');
  c.name.className = 'name';
  c.nameText = document.createElement('span');
  c.badge = document.createElement('span');
  c.badge.className = 'badge';
  c.badge.textContent = 'MFA';
  c.badge.title = 'Terminals on this agent need an MFA code';
  c.name.append(c.nameText, ' ', c.badge);
  c.status = document.createElement('div');
  c.status.className = 'status';
  c.state = document.createElement('span');
  c.sessions = document.createElement('span');
  c.sessions.className = 'sessions';
  c.status.append(c.state, c.sessions);
  c.stats = document.createElement('div');
  c.stats.className = 'stats';
  c.open = document.createElement('button');
  c.open.type = 'button';
  c.open.className = 'open';
  c.open.textContent = 'Open terminal';
  c.open.addEventListener('click', () => openWorkspace(id));
  c.details = document.createElement('a');
  c.details.className = 'details';
  c.details.href = `#/agent/${encodeURIComponent(id)}`;
  c.details.textContent = 'Details';
  const actions = document.createElement('div');
  actions.className = 'actions';
  actions.append(c.open, c.details);
  c.li.append(c.name, c.status, c.stats, actions);
  return c;
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function renderAgents() {
  const list = $('agent-list');
  $('agents-empty').hidden = state.agents.size > 0;
  for (const [id, c] of cards) {
    if (!state.agents.has(id)) { c.li.remove(); cards.delete(id); }
  }
  let at = list.firstElementChild;
  for (const a of state.agents.values()) {
    let c = cards.get(a.id);
    if (!c) { c = makeCard(a.id); cards.set(a.id, c); }
    if (c.li !== at) list.insertBefore(c.li, at); else at = at.nextElementSibling;
    c.li.className = `agent${a.id === state.agentId ? ' current' : ''}`;
    c.li.dataset.status = a.status;
    setText(c.nameText, a.name);
    c.badge.hidden = !a.mfa_locked;
    setText(c.state, a.status);
    const count = sessionCount(a);
    setText(c.sessions, count === null ? '' : ` · ${count} session${count === 1 ? '' : 's'}`);
    setText(c.stats, statsText(a));
    c.open.setAttribute('aria-label', `Open terminal on ${a.name}`);
    c.details.setAttribute('aria-label', `Details of ${a.name}: charts, sessions, recordings`);
    if (state.view === 'agent' && manage.currentAgent() === a.id) {
      c.details.setAttribute('aria-current', 'page');
    } else {
      c.details.removeAttribute('aria-current');
    }
  }
  const current = state.agents.get(state.agentId);
  if (current) {
    $('workspace-title').textContent = `${current.name} — ${current.status}`;
  }
}

function connectEvents() {
  if (!state.session) return;
  const ws = new WebSocket(wsUrl('/api/events'), ['rexec.v1', `rexec.token.${state.session.token}`]);
  state.events = ws;
  ws.onopen = () => { state.eventsRetry = 0; };
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch { return; }
    const id = m.data && m.data.agent_id;
    const a = id && state.agents.get(id);
    if (m.type === 'agent_connected') {
      refreshAgents();  // new connected_at and system_info
      for (const p of state.panes) if (p.agentId === id) p.agentBack();
    } else if (m.type === 'agent_disconnected' && a) {
      a.status = 'offline';
      renderAgents();
    } else if (m.type === 'agent_stats' && a) {
      a.stats = m.data.stats;
      a.status = 'online';
      renderAgents();
    } else if (m.type === 'agent_sessions' && a && Array.isArray(m.data.sessions)) {
      a.sessions = m.data.sessions;
      renderAgents();
    } else if (m.type === 'agent_registered') {
      refreshAgents();
    }
    manage.onEvent(m);
  };
  ws.onclose = () => {
    if (state.events !== ws || !state.session) return;
    state.events = null;
    // The hub said nothing more: reconnect, and catch up on what changed meanwhile.
    setTimeout(() => { if (state.session) { refreshAgents(); connectEvents(); } },
      backoff(state.eventsRetry++));
  };
}

// ---------------------------------------------------------------------------------------------
// Terminals

function openWorkspace(agentId, attachSession = null) {
  if (state.view !== 'workspace') go('#/');
  if (state.agentId !== agentId) {
    for (const p of [...state.panes]) p.dispose();
    state.panes = [];
  }
  if (state.agentId !== agentId && !files.stop) closeFiles();  // the form names no agent
  state.agentId = agentId;
  for (const id of ['split', 'upload', 'download']) $(id).hidden = false;
  renderAgents();
  if (attachSession) {
    const viewing = state.panes.find((p) => p.sessionId === attachSession);
    if (viewing) viewing.term.focus(); else addPane(attachSession !== 'main', attachSession);
  } else if (state.panes.length === 0) {
    addPane(false);
  }
}

// `attach`: the id of a session that exists already, viewed with &session= (docs/protocol.md).
function addPane(split, attach = null) {
  if (!xterm) {
    notice('This server was built without xterm.js (run npm ci --prefix web, then rebuild it).');
    return null;
  }
  if (!state.agentId) return null;
  const pane = new Pane(state.agentId, split, attach);
  state.panes.push(pane);
  for (const p of state.panes) p.fit();
  pane.connect();
  return pane;
}

function closePane(pane) {
  const i = state.panes.indexOf(pane);
  if (i < 0) return;
  pane.dispose();
  state.panes.splice(i, 1);
  for (const p of state.panes) p.fit();
  const next = state.panes[Math.min(i, state.panes.length - 1)];
  if (next) next.term.focus(); else $('agent-list').querySelector('button')?.focus();
}

function focusPane(step) {
  if (state.panes.length === 0) return;
  const at = state.panes.findIndex((p) => p.el.contains(document.activeElement));
  const i = ((at < 0 ? 0 : at + step) + state.panes.length) % state.panes.length;
  state.panes[i].term.focus();
}

function currentPane() {
  return state.panes.find((p) => p.el.contains(document.activeElement)) || state.panes[0] || null;
}

// One terminal: a user socket on `main` or on its own `split-<connId>` session.
class Pane {
  constructor(agentId, split, attach = null) {
    this.agentId = agentId;
    this.split = split;
    this.connId = randomId();
    this.attach = attach;  // a session that exists already (&session=), or null
    this.sessionId = attach || (split ? `split-${this.connId}` : 'main');
    this.offset = null;      // output bytes shown (for &offset=N on reconnect)
    this.ws = null;
    this.attempt = 0;
    this.disposed = false;
    this.stopped = false;    // the shell exited; Enter starts a new one
    // The agent came back and its shell's fate is on the way: shell_started (resumed, or a new
    // shell in place of one that died with the agent, announced by a shell_stopped just before).
    this.resuming = false;
    this.received = 0;       // output bytes received, and gap markers (for tests and stats)
    this.gaps = 0;
    this.flowPaused = false;  // we asked the server to pause this socket's session
    this.pauses = 0;
    this.skippedHidden = 0;   // output dropped while hidden, not yet drawn past
    this.noteQueued = false;  // queue[0] is the note that says so
    this.queue = [];         // output not yet handed to xterm.js
    this.queued = 0;
    this.inFlight = 0;
    this.frame = 0;

    this.el = document.createElement('section');
    this.el.className = 'pane';
    this.el.dataset.session = this.sessionId;
    const bar = document.createElement('div');
    bar.className = 'pane-bar';
    const label = document.createElement('span');
    label.textContent = this.sessionId;
    this.stateEl = document.createElement('span');
    this.stateEl.className = 'state';
    bar.append(label, this.stateEl);
    if (split) {
      const close = document.createElement('button');
      close.type = 'button';
      close.title = 'Close this split (its shell ends when no one else views it)';
      close.setAttribute('aria-label', `Close ${this.sessionId}`);
      close.setAttribute('aria-keyshortcuts', 'Alt+Shift+W');
      close.textContent = '×';
      close.addEventListener('click', () => closePane(this));
      bar.append(close);
    }
    const host = document.createElement('div');
    host.className = 'term';
    this.el.append(bar, host);
    $('panes').append(this.el);

    this.term = new xterm.Terminal({
      cursorBlink: true, scrollback: 5000, fontSize: 14,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
      allowProposedApi: true,  // the search addon's match decorations
      screenReaderMode: false,
    });
    this.fitAddon = new xterm.FitAddon();
    this.term.loadAddon(this.fitAddon);
    if (xterm.SearchAddon) {
      this.search = new xterm.SearchAddon();
      this.term.loadAddon(this.search);
      this.search.onDidChangeResults((r) => showSearchCount(this, r));
    }
    if (xterm.WebLinksAddon) {
      // A link opens in a new tab that cannot reach back into this page.
      this.term.loadAddon(new xterm.WebLinksAddon((event, uri) => {
        window.open(uri, '_blank', 'noopener,noreferrer');
      }));
    }
    // Copy on select: a selection goes to the clipboard at once (where the browser lets the page
    // write it: a secure context, https or localhost).
    this.copied = '';
    this.term.onSelectionChange(() => {
      const text = this.term.getSelection();
      if (!text || !navigator.clipboard) return;
      navigator.clipboard.writeText(text).then(() => { this.copied = text; }, () => {});
    });
    // The page's shortcuts (the help overlay) are not sent to the shell.
    this.term.attachCustomKeyEventHandler((ev) => !shortcutOf(ev));
    this.term.open(host);
    this.term.textarea?.setAttribute('aria-label', `Terminal: ${this.sessionId}`);
    this.fit();
    this.term.onData((text) => this.input(encoder.encode(text)));
    this.term.onBinary((text) => this.input(Uint8Array.from(text, (c) => c.charCodeAt(0))));
    this.term.onResize(({ cols, rows }) => this.sendJson({ type: 'resize', cols, rows }));
    this.resizeObserver = new ResizeObserver(() => this.fit());
    this.resizeObserver.observe(host);
    this.term.focus();
  }

  setState(name, text) {
    this.el.dataset.state = name;
    this.stateEl.textContent = text;
  }

  fit() {
    if (this.disposed) return;
    try { this.fitAddon.fit(); } catch { /* not laid out yet */ }
  }

  sendJson(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  input(bytes) {
    if (this.stopped) {
      if (!bytes.includes(13)) return;
      this.stopped = false;
      this.offset = null;  // a new shell numbers its output from 0
      if (this.ws) {
        this.ws.onclose = null;
        this.ws.close(1000);
        this.ws = null;
      }
      this.reconnect(0);
      return;
    }
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    if (this.ws.protocol === 'rexec.v2') {
      this.ws.send(bytes);
    } else {
      this.ws.send(JSON.stringify({ type: 'input', data: new TextDecoder().decode(bytes) }));
    }
  }

  socketPath() {
    let p = `/ws/agent/${encodeURIComponent(this.agentId)}/terminal?id=${this.connId}`;
    if (this.attach) p += `&session=${encodeURIComponent(this.attach)}`;
    else if (this.split) p += '&newSession=true';
    if (this.offset !== null) p += `&offset=${this.offset}`;
    return p;
  }

  async connect() {
    if (this.disposed) return;
    this.setState('connecting', 'connecting…');
    // A browser sees no status or body of a refused upgrade, so first ask with a plain GET,
    // which the server answers with the same checks (204 for &check=1 when it would pass).
    const pre = await api('GET', `${this.socketPath()}&check=1`);
    if (this.disposed || !state.session) return;
    if (pre.status === 423) {
      refreshAgents();  // show the lock on the agent's card too
      if (await mfaPrompt(this.agentId)) this.connect();
      else this.setState('error', 'MFA code needed');
      return;
    }
    if (pre.status === 401) { signOut('Your session has ended: sign in again.'); return; }
    if (pre.status === 404 && pre.data && pre.data.error === 'agent not online') {
      this.setState('waiting', 'agent offline: waiting for it');
      return;  // agentBack() reconnects when the events hub says it is back
    }
    if (pre.status === 0 || pre.status >= 500 || pre.status === 429 && !pre.data?.code) {
      this.reconnect();
      return;
    }
    if (pre.status !== 204) {
      this.setState('error', refusalText(pre.status, pre.data));
      this.term.write(`\r\n\x1b[31m${refusalText(pre.status, pre.data)}\x1b[0m\r\n`);
      return;
    }
    const ws = new WebSocket(wsUrl(this.socketPath()),
      ['rexec.v2', 'rexec.v1', `rexec.token.${state.session.token}`]);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.resuming = false;
      this.flowPaused = false;  // flow state belongs to the socket
      this.checkFlow();
      this.setState('open', ws.protocol === 'rexec.v2' ? 'connected' : 'connected (v1)');
      this.sendJson({ type: 'resize', cols: this.term.cols, rows: this.term.rows });
    };
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onclose = (ev) => this.onClose(ws, ev);
  }

  onMessage(data) {
    if (data instanceof ArrayBuffer) {  // v2 output: raw bytes
      const bytes = new Uint8Array(data);
      this.resuming = false;
      if (this.offset !== null) this.offset += bytes.length;
      this.output(bytes);
      return;
    }
    let m;
    try { m = JSON.parse(data); } catch { return; }
    switch (m.type) {
      case 'offset': this.offset = Number(m.data); break;
      case 'output': {  // v1: text, with the offset of its first byte
        const bytes = encoder.encode(String(m.data || ''));
        this.resuming = false;
        if (typeof m.offset === 'number') this.offset = m.offset + bytes.length;
        this.output(bytes);
        break;
      }
      case 'gap':
        this.gaps += 1;
        this.output(encoder.encode(
          `\r\n\x1b[33m[${m.data.to - m.data.from} bytes of output were lost]\x1b[0m\r\n`));
        break;
      case 'shell_starting': this.setState('connecting', 'starting shell…'); break;
      case 'shell_started':  // also a new shell in place of one that died with its agent
        this.stopped = false;
        this.resuming = false;
        this.setState('open', 'connected');
        break;
      case 'shell_error':
        this.resuming = false;
        this.setState('error', 'shell error');
        this.output(encoder.encode(`\r\n\x1b[31m${m.data && m.data.error}\x1b[0m\r\n`));
        break;
      case 'shell_stopped': {
        const d = m.data || {};
        let how = '';
        if (d.signal) how = ` (signal ${d.signal})`;
        else if (d.exit_code !== undefined && d.exit_code !== null) how = ` (exit code ${d.exit_code})`;
        this.output(encoder.encode(`\r\n\x1b[33m[shell ended${how}]\x1b[0m\r\n`));
        if (this.resuming) {
          // It died with the agent, and its replacement's shell_started follows. What is typed
          // meanwhile goes to the new shell; Enter must not open yet another one.
          this.setState('connecting', 'starting a new shell…');
          break;
        }
        this.stopped = true;
        this.setState('closed', `shell ended${how}: press Enter for a new one`);
        break;
      }
      case 'session_ended': this.ended(); break;
      case 'agent_disconnected': this.setState('waiting', 'agent disconnected: waiting'); break;
      case 'agent_connected':
        this.resuming = true;
        this.setState('open', 'connected');
        break;
      default: break;  // stats, exec_result, pong: not shown here
    }
  }

  // Output is handed to xterm.js once per animation frame, as one write, and only while
  // xterm.js has less than kMaxInFlight unparsed: a flood never blocks the tab.
  output(bytes) {
    this.received += bytes.length;
    this.queue.push(bytes);
    this.queued += bytes.length;
    if (document.hidden && this.queued > 2 * kHiddenKeep) this.trimHidden();
    this.checkFlow();
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  // Drops the oldest queued output: keeps at most kHiddenKeep bytes and as many lines as the
  // terminal can show (scrollback and screen), from a line start, after a note of what went.
  trimHidden() {
    if (this.noteQueued) {  // the note of an earlier trim: replaced below
      this.queued -= this.queue[0].length;
      this.queue.shift();
      this.noteQueued = false;
    }
    let skipped = 0;
    while (this.queue.length > 1 && this.queued - this.queue[0].length > kHiddenKeep) {
      skipped += this.queue[0].length;
      this.queued -= this.queue[0].length;
      this.queue.shift();
    }
    // The cut: after the newline that starts the last `maxLines` lines, or else after the first
    // newline (chunks were dropped, so the first line is a fragment).
    const maxLines = this.term.options.scrollback + this.term.rows - 10;  // room for the note
    let cut = null;
    let lines = 0;
    for (let i = this.queue.length - 1; i >= 0 && !cut; i -= 1) {
      const b = this.queue[i];
      for (let j = b.length - 1; j >= 0; j -= 1) {
        if (b[j] === 10 && ++lines > maxLines) {
          cut = { i, j };
          break;
        }
      }
    }
    if (!cut && skipped > 0) {
      const j = this.queue[0].indexOf(10);
      if (j >= 0) cut = { i: 0, j };
    }
    if (cut) {
      for (let k = 0; k < cut.i; k += 1) skipped += this.queue[k].length;
      skipped += cut.j + 1;
      this.queue = [this.queue[cut.i].subarray(cut.j + 1), ...this.queue.slice(cut.i + 1)];
      this.queued = this.queue.reduce((n, b) => n + b.length, 0);
    }
    this.skippedHidden += skipped;
    const note = encoder.encode(`\x1b[0m\r\n\x1b[33m[${this.skippedHidden} bytes not shown ` +
      'while this tab was hidden]\x1b[0m\r\n');
    this.queue.unshift(note);
    this.queued += note.length;
    this.noteQueued = true;
  }

  // What the server should know about our backlog (v2 sockets only: a v1 server has no "flow").
  checkFlow() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || ws.protocol !== 'rexec.v2') return;
    const backlog = document.hidden ? 0 : this.queued + this.inFlight;
    if (!this.flowPaused && backlog > flowMarks.high) {
      this.flowPaused = true;
      this.pauses += 1;
      ws.send(JSON.stringify({ type: 'flow', data: { paused: true } }));
    } else if (this.flowPaused && backlog < flowMarks.low) {
      this.flowPaused = false;
      ws.send(JSON.stringify({ type: 'flow', data: { paused: false } }));
    }
  }

  flush() {
    this.frame = 0;
    if (this.disposed || this.queued === 0) return;
    if (this.inFlight > kMaxInFlight) {
      this.frame = requestAnimationFrame(() => this.flush());
      return;
    }
    const chunk = new Uint8Array(this.queued);
    let at = 0;
    for (const b of this.queue) { chunk.set(b, at); at += b.length; }
    this.queue = [];
    this.queued = 0;
    this.noteQueued = false;
    this.skippedHidden = 0;
    this.inFlight += chunk.length;
    this.term.write(chunk, () => {
      this.inFlight -= chunk.length;
      this.checkFlow();
    });
  }

  onClose(ws, ev) {
    if (this.ws !== ws || this.disposed) return;
    this.ws = null;
    if (ev.code === 4001) {  // the agent stayed away longer than the server's grace
      this.setState('waiting', 'agent not online: waiting for it');
      return;
    }
    if (ev.code === 4002) {  // someone ended the session (DELETE .../sessions/ID)
      this.ended();
      return;
    }
    if (ev.code === 1008) {
      this.output(encoder.encode('\r\n\x1b[33m[this tab fell behind; catching up]\x1b[0m\r\n'));
    }
    this.reconnect();
  }

  reconnect(delay = backoff(this.attempt++)) {
    if (this.disposed) return;
    this.setState('connecting', 'reconnecting…');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  // The session was ended from the agent view: like a shell that exited, Enter starts a new one
  // (a new session of this pane's own, not the one it attached to).
  ended() {
    if (this.stopped) return;
    this.stopped = true;
    this.attach = null;
    this.sessionId = this.split ? `split-${this.connId}` : 'main';
    this.el.dataset.session = this.sessionId;
    this.el.querySelector('.pane-bar span').textContent = this.sessionId;
    this.setState('closed', 'session ended: press Enter for a new one');
    this.output(encoder.encode('\r\n\x1b[33m[session ended]\x1b[0m\r\n'));
  }

  agentBack() {
    if (!this.ws && !this.disposed && this.el.dataset.state === 'waiting') this.reconnect(0);
  }

  dispose() {
    this.disposed = true;
    clearTimeout(this.retryTimer);
    if (this.frame) cancelAnimationFrame(this.frame);
    this.resizeObserver.disconnect();
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000);
    }
    if (search.pane === this) closeSearch();
    this.term.dispose();
    this.el.remove();
  }
}

// ---------------------------------------------------------------------------------------------
// Keyboard shortcuts (the help overlay, #help) and search in a pane's scrollback.

// The action of a page shortcut, or null. Alt+Shift+letter: no shell or readline binding uses
// it, and the browser keeps none of them for itself.
function shortcutOf(ev) {
  if (ev.type !== 'keydown' || !ev.altKey || !ev.shiftKey || ev.ctrlKey || ev.metaKey) return null;
  switch (ev.code) {
    case 'KeyD': return 'split';
    case 'KeyW': return 'close';
    case 'ArrowRight': return 'next';
    case 'ArrowLeft': return 'previous';
    case 'KeyF': return 'search';
    case 'KeyM': return 'leave';
    case 'KeyH': return 'help';
    default: return null;
  }
}

function onShortcut(ev) {
  const action = shortcutOf(ev);
  if (!action || !state.session) return;
  ev.preventDefault();
  ev.stopPropagation();
  const pane = currentPane();
  switch (action) {
    case 'split':
      if (state.agentId && state.view === 'workspace') addPane(true)?.term.focus();
      break;
    case 'close':
      if (pane && pane.split) closePane(pane);
      break;
    case 'next': focusPane(1); break;
    case 'previous': focusPane(-1); break;
    case 'search': if (pane && state.view === 'workspace') openSearch(pane); break;
    case 'leave': $('agent-list').querySelector('button')?.focus() || $('add-machine').focus(); break;
    case 'help': openHelp(); break;
    default: break;
  }
}

function openHelp() {
  const dialog = $('help');
  if (!dialog.open) dialog.showModal();
}

const search = { pane: null };

const kSearchOptions = {
  decorations: {  // xterm.js wants #RRGGBB colours here
    matchBackground: '#3a4a5c',
    matchBorder: '#4fa3ff',
    matchOverviewRuler: '#4fa3ff',
    activeMatchBackground: '#8a6d1f',
    activeMatchBorder: '#d29922',
    activeMatchColorOverviewRuler: '#d29922',
  },
};

function openSearch(pane) {
  search.pane = pane;
  $('search').hidden = false;
  for (const p of state.panes) p.fit();
  $('search-text').focus();
  $('search-text').select();
}

function closeSearch() {
  if (search.pane && search.pane.search) search.pane.search.clearDecorations();
  const pane = search.pane;
  search.pane = null;
  $('search').hidden = true;
  $('search-count').textContent = '';
  for (const p of state.panes) p.fit();
  if (pane && !pane.disposed) pane.term.focus();
}

function findInPane(backwards) {
  const pane = search.pane;
  const text = $('search-text').value;
  if (!pane || pane.disposed || !pane.search) return false;
  if (!text) { pane.search.clearDecorations(); $('search-count').textContent = ''; return false; }
  const found = backwards ? pane.search.findPrevious(text, kSearchOptions)
    : pane.search.findNext(text, kSearchOptions);
  if (!found) $('search-count').textContent = 'not found';
  return found;
}

function showSearchCount(pane, r) {
  if (search.pane !== pane) return;
  $('search-count').textContent = r.resultCount === 0 ? 'not found'
    : r.resultIndex >= 0 ? `${r.resultIndex + 1} of ${r.resultCount}` : `${r.resultCount} found`;
}

// xterm.js draws its cells in CSS pixels, so the browser's zoom scales its font; a change of
// devicePixelRatio (zoom, or another screen) also changes how many cells fit: fit again.
function watchZoom() {
  const query = matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`);
  query.addEventListener('change', () => {
    for (const p of state.panes) p.fit();
    watchZoom();
  }, { once: true });
}

// Asks for a TOTP code and verifies it (PROTOCOL §6). True once verified. Panes that hit the
// lock together share one prompt (a verification opens all the user's terminals).
function mfaPrompt(agentId) {
  if (!state.mfaPrompt) {
    state.mfaPrompt = askMfa(agentId).finally(() => { state.mfaPrompt = null; });
  }
  return state.mfaPrompt;
}

function askMfa(agentId) {
  const dialog = $('mfa');
  const a = state.agents.get(agentId);
  $('mfa-agent').textContent = a ? a.name : agentId;
  $('mfa-error').textContent = '';
  $('mfa-code').value = '';
  return new Promise((resolve) => {
    const form = $('mfa-form');
    const done = (ok) => {
      form.onsubmit = null;
      $('mfa-cancel').onclick = null;
      dialog.close();
      resolve(ok);
    };
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      const r = await api('POST', `/api/security/terminal/agent:${agentId}/mfa-verify`,
        { code: $('mfa-code').value.trim() });
      if (r.status === 200) { done(true); return; }
      $('mfa-error').textContent = r.status === 401 ? 'That code is not valid.'
        : refusalText(r.status, r.data);
    };
    $('mfa-cancel').onclick = () => done(false);
    dialog.showModal();
    $('mfa-code').focus();
  });
}

// ---------------------------------------------------------------------------------------------
// Files: upload to and download from the workspace's agent (GET and PUT
// /api/agents/:id/files, files/list). One transfer at a time; its progress and its result, or
// the server's error, go to the status line under the workspace bar.

const files = {
  mode: null,     // 'upload' or 'download' while the form is open
  file: null,     // the File picked for upload
  dir: '/tmp',    // the directory last used, the next default
  lastPath: '',   // the file last uploaded or downloaded
  stop: null,     // aborts the transfer under way
};

function filesUrl(agentId, suffix, path) {
  const agent = encodeURIComponent(agentId);
  return `/api/agents/${agent}/files${suffix}?path=${encodeURIComponent(path)}`;
}

function joinPath(dir, name) {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

// `kind` is 'busy', 'ok' or 'error' (data-state, for the colour and for tests). A progress bar
// shows while `total` is given.
function filesStatus(kind, text, done = 0, total = null) {
  const el = $('files-status');
  el.dataset.state = kind;
  el.textContent = text;
  const bar = $('files-progress');
  bar.hidden = total === null;
  if (total !== null) {
    bar.max = Math.max(total, 1);
    bar.value = done;
  }
  $('files').hidden = false;
}

function filesProgress(verb, name, done, total) {
  if (total === null) {
    filesStatus('busy', `${verb} ${name}: ${formatBytes(done)}`, 0, 0);
    $('files-progress').removeAttribute('value');  // indeterminate
    return;
  }
  const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
  filesStatus('busy', `${verb} ${name}: ${formatBytes(done)} of ${formatBytes(total)} (${pct}%)`,
    done, total);
}

function fileErrorText(status, data) {
  if (status === 0) return 'the server cannot be reached, or the transfer was cut off.';
  if (status === 404 && data && data.error === 'agent not online') return 'the agent is offline.';
  const error = data && typeof data.error === 'string' ? data.error : '';
  return error ? `${error} (${status}).` : `the server answered ${status}.`;
}

// "Download of /x failed: …", without the path twice when the server's error names it.
function failedText(noun, preposition, path, status, data) {
  const text = fileErrorText(status, data);
  return text.includes(path) ? `${noun} failed: ${text}`
    : `${noun} ${preposition} ${path} failed: ${text}`;
}

// 401 signs out; 423 asks for the MFA code. True when the request should be made again.
async function fileRefused(agentId, status) {
  if (status === 401) {
    signOut('Your session has ended: sign in again.');
    return false;
  }
  return status === 423 && mfaPrompt(agentId);
}

function setFilesBusy(stop) {
  files.stop = stop;
  for (const id of ['files-go', 'files-browse', 'upload', 'download']) $(id).disabled = !!stop;
  $('files-cancel').textContent = stop ? 'Stop' : 'Cancel';
}

function openFiles(mode) {
  if (files.stop) return;
  files.mode = mode;
  const upload = mode === 'upload';
  $('files-label').textContent = upload
    ? `Upload ${files.file.name} (${formatBytes(files.file.size)}) to the directory`
    : 'Download the file';
  $('files-go').textContent = upload ? 'Upload' : 'Download';
  $('files-path').value = upload ? files.dir : files.lastPath || joinPath(files.dir, '');
  $('files-entries').hidden = true;
  $('files-status').textContent = '';  // the last transfer's result
  delete $('files-status').dataset.state;
  $('files-progress').hidden = true;
  $('files-form').hidden = false;
  $('files').hidden = false;
  $('files-path').focus();
}

// Closes the form; the status line stays until the next transfer or the close button.
function closeFiles() {
  files.mode = null;
  files.file = null;
  $('upload-file').value = '';
  $('files-form').hidden = true;
  $('files-entries').hidden = true;
  $('files').hidden = !$('files-status').textContent;
}

function dismissFiles() {
  if (files.stop) files.stop();
  closeFiles();
  $('files-status').textContent = '';
  $('files-progress').hidden = true;
  $('files').hidden = true;
}

function submitFiles() {
  const value = $('files-path').value.trim();
  if (!value.startsWith('/')) {
    filesStatus('error', 'An absolute path is needed (one that starts with /).');
    return;
  }
  if (files.mode === 'upload') {
    files.dir = value.replace(/\/+$/, '') || '/';
    upload(state.agentId, files.file, joinPath(files.dir, files.file.name));
  } else if (value.endsWith('/')) {
    filesStatus('error', 'That is a directory: name a file in it (List shows what is there).');
  } else {
    files.dir = value.slice(0, value.lastIndexOf('/')) || '/';
    download(state.agentId, value);
  }
}

// PUTs with XMLHttpRequest, which reports upload progress (fetch does not). The File body
// gives the request its Content-Length.
async function upload(agentId, file, path) {
  const r = await new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', filesUrl(agentId, '', path));
    xhr.setRequestHeader('Authorization', `Bearer ${state.session.token}`);
    xhr.responseType = 'json';
    xhr.upload.onprogress = (ev) => filesProgress('Uploading', file.name, ev.loaded, file.size);
    xhr.onload = () => resolve({ status: xhr.status, data: xhr.response });
    xhr.onerror = () => resolve({ status: 0, data: null });
    xhr.onabort = () => resolve({ status: -1, data: null });
    setFilesBusy(() => xhr.abort());
    filesProgress('Uploading', file.name, 0, file.size);
    xhr.send(file);
  });
  setFilesBusy(null);
  if (r.status === 200 && r.data) {
    const d = r.data;
    files.lastPath = d.path;
    filesStatus('ok', `Uploaded ${d.path}: ${formatBytes(d.size)} (${d.size} bytes), ` +
      `sha256 ${String(d.sha256).slice(0, 16)}…`);
    if (files.mode === 'upload' && files.file === file) closeFiles();
    return;
  }
  if (!state.session) return;  // signed out meanwhile
  if (r.status === -1) {
    filesStatus('error', `Upload of ${file.name} stopped.`);
    return;
  }
  if (await fileRefused(agentId, r.status)) {
    upload(agentId, file, path);
    return;
  }
  if (!state.session) return;
  filesStatus('error', failedText('Upload', 'to', path, r.status, r.data));
}

// A plain link cannot send the Authorization header, so the page fetches the file itself,
// holds it in memory, and saves it through an object URL and a temporary download link.
async function download(agentId, path) {
  const controller = new AbortController();
  setFilesBusy(() => controller.abort());
  let name = path.slice(path.lastIndexOf('/') + 1);
  let status = 0;
  let data = null;
  try {
    const response = await fetch(filesUrl(agentId, '', path), {
      headers: { Authorization: `Bearer ${state.session.token}` }, signal: controller.signal,
    });
    status = response.status;
    if (status === 200) {
      const header = response.headers.get('Content-Length');
      const total = header === null ? null : Number(header);
      const given = /filename="([^"]*)"/.exec(response.headers.get('Content-Disposition') || '');
      if (given && given[1]) name = given[1];
      const mode = response.headers.get('X-Rexec-Mode');
      const reader = response.body.getReader();
      const chunks = [];
      let received = 0;
      filesProgress('Downloading', name, 0, total);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        received += value.length;
        filesProgress('Downloading', name, received, total);
      }
      setFilesBusy(null);
      if (total !== null && received !== total) {
        filesStatus('error', `Download of ${path} failed: ${received} of ${total} bytes arrived.`);
        return;
      }
      const blob = new Blob(chunks, { type: 'application/octet-stream' });
      let digest = '';
      if (crypto.subtle && received <= kDigestMax) {  // only in a secure context (https, localhost)
        const sum = new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
        const hex = Array.from(sum.slice(0, 8), (b) => b.toString(16).padStart(2, '0'));
        digest = `, sha256 ${hex.join('')}…`;
      }
      saveBlob(blob, name);
      files.lastPath = path;
      filesStatus('ok', `Downloaded ${path}: ${formatBytes(received)} (${received} bytes)` +
        `${mode ? `, mode ${mode}` : ''}${digest}`);
      if (files.mode === 'download') closeFiles();
      return;
    }
    try { data = await response.json(); } catch { /* not JSON */ }
  } catch {
    setFilesBusy(null);
    if (!state.session) return;  // signed out meanwhile
    filesStatus('error', controller.signal.aborted ? `Download of ${path} stopped.`
      : failedText('Download', 'of', path, 0, null));
    return;
  }
  setFilesBusy(null);
  if (await fileRefused(agentId, status)) {
    download(agentId, path);
    return;
  }
  if (!state.session) return;
  filesStatus('error', failedText('Download', 'of', path, status, data));
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);  // the download has its copy by then
}

// Lists the directory in the path box (for a download, the directory of the file named there).
// A directory opens; a file, for a download, is picked.
async function browseFiles() {
  const agentId = state.agentId;
  let dir = $('files-path').value.trim();
  if (!dir.startsWith('/')) {
    filesStatus('error', 'An absolute path is needed (one that starts with /).');
    return;
  }
  if (files.mode === 'download') dir = dir.slice(0, dir.lastIndexOf('/') + 1);
  dir = dir.replace(/\/+$/, '') || '/';
  const r = await api('GET', filesUrl(agentId, '/list', dir));
  if (r.status !== 200 || !r.data || !Array.isArray(r.data.entries)) {
    if (await fileRefused(agentId, r.status)) {
      browseFiles();
    } else if (state.session) {
      filesStatus('error', failedText('Listing', 'of', dir, r.status, r.data));
    }
    return;
  }
  if (!files.mode) return;  // the form was closed meanwhile
  const entries = [...r.data.entries].sort((a, b) =>
    (a.type === 'dir' ? 0 : 1) - (b.type === 'dir' ? 0 : 1) || a.name.localeCompare(b.name));
  if (dir !== '/') entries.unshift({ name: '..', type: 'dir', parent: true });
  const list = $('files-entries');
  list.replaceChildren();
  for (const e of entries) {
    const li = document.createElement('li');
    li.dataset.type = e.type;
    const label = e.type === 'dir' ? `${e.name}/` : e.name;
    const size = e.type === 'file' ? formatBytes(e.size) : e.type === 'dir' ? '' : e.type;
    const target = e.parent ? dir.slice(0, dir.lastIndexOf('/')) || '/' : joinPath(dir, e.name);
    const opens = e.type === 'dir' || (files.mode === 'upload' && e.type === 'symlink');
    const picks = files.mode === 'download' && !opens;
    if (opens || picks) {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = label;
      button.addEventListener('click', () => {
        if (opens) {
          $('files-path').value = files.mode === 'download' ? joinPath(target, '') : target;
          browseFiles();
        } else {
          $('files-path').value = target;
          list.hidden = true;
          $('files-go').focus();
        }
      });
      li.append(button);
    } else {
      li.append(label);
    }
    if (!e.parent) {
      const info = document.createElement('span');
      info.className = 'size';
      info.textContent = size;
      li.append(info);
    }
    list.append(li);
  }
  if (r.data.truncated) {
    const li = document.createElement('li');
    li.className = 'hint';
    li.textContent = 'More entries are not shown.';
    list.append(li);
  }
  list.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Start

async function main() {
  try {
    const [{ Terminal }, { FitAddon }] =
      await Promise.all([import('./xterm.mjs'), import('./addon-fit.mjs')]);
    xterm = { Terminal, FitAddon };
  } catch (e) {
    notice('This server was built without xterm.js (run npm ci --prefix web, then rebuild it).');
  }
  // The addons are comfort: a terminal works without them.
  if (xterm) {
    const [search, links] = await Promise.allSettled(
      [import('./addon-search.mjs'), import('./addon-web-links.mjs')]);
    if (search.status === 'fulfilled') xterm.SearchAddon = search.value.SearchAddon;
    if (links.status === 'fulfilled') xterm.WebLinksAddon = links.value.WebLinksAddon;
  }
  manage.init({
    state, api, $, go, notice, refusalText, formatBytes, openWorkspace, signOut, refreshAgents,
    renderAgents, saveBlob,
  });
  window.addEventListener('hashchange', route);
  document.addEventListener('keydown', onShortcut, true);
  $('help-open').addEventListener('click', openHelp);
  $('search').addEventListener('submit', (ev) => { ev.preventDefault(); findInPane(false); });
  $('search-prev').addEventListener('click', () => findInPane(true));
  $('search-close').addEventListener('click', closeSearch);
  $('search-text').addEventListener('input', () => findInPane(false));
  $('search-text').addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') { ev.preventDefault(); closeSearch(); }
    if (ev.key === 'Enter' && ev.shiftKey) { ev.preventDefault(); findInPane(true); }
  });
  watchZoom();
  $('sign-in-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('token');
    const error = await signIn(input.value);
    input.value = '';
    if (error) { $('sign-in-error').textContent = error; return; }
    showApp();
  });
  $('sign-out').addEventListener('click', () => signOut(''));
  $('split').addEventListener('click', () => addPane(true));
  $('add-machine').addEventListener('click', () => manage.addMachine());
  $('upload').addEventListener('click', () => $('upload-file').click());
  $('upload-file').addEventListener('change', () => {
    const picked = $('upload-file').files[0];
    if (!picked || files.stop) return;
    files.file = picked;
    openFiles('upload');
  });
  $('download').addEventListener('click', () => { files.file = null; openFiles('download'); });
  $('files-form').addEventListener('submit', (ev) => { ev.preventDefault(); submitFiles(); });
  $('files-browse').addEventListener('click', () => browseFiles());
  $('files-cancel').addEventListener('click', () => {
    if (files.stop) files.stop(); else closeFiles();
  });
  $('files-close').addEventListener('click', () => dismissFiles());
  // Hidden: resume any paused shell (the tab keeps only the newest output). Visible: draw.
  document.addEventListener('visibilitychange', () => {
    for (const p of state.panes) {
      p.checkFlow();
      if (document.hidden || !p.queued) continue;
      if (p.skippedHidden > 0) p.trimHidden();  // so the note is within what the terminal keeps
      if (!p.frame) p.frame = requestAnimationFrame(() => p.flush());
    }
  });
  state.session = loadSession();
  if (state.session) showApp(); else showSignIn('');
}

// For tests and the curious: the panes and the text of their terminals.
window.rexec = {
  state,
  flowMarks,
  manage,
  paneText(i) {
    const buf = state.panes[i].term.buffer.active;
    const lines = [];
    for (let y = 0; y < buf.length; y += 1) lines.push(buf.getLine(y).translateToString(true));
    return lines.join('\n');
  },
};

main();
