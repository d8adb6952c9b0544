// The foxworker console. Everything the API returns is text from queues,
// payloads and brokers, so it only ever reaches the page through
// textContent and attributes set one by one: never innerHTML.
'use strict';

const POLL_MS = 3000;
const state = { session: null, queues: [], view: 'overview', deadQueue: '', letters: [], letter: null };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function setStatus(text, error) {
  const s = $('status');
  s.textContent = text || '';
  s.className = error ? 'error' : '';
}

async function getJson(path) {
  const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || ('HTTP ' + r.status));
  return body;
}

// A change: the session cookie travels with it, and the daemon also wants
// this origin and the custom header, which a form on another page cannot send.
async function change(path, method, body) {
  const r = await fetch(path, {
    method: method || 'POST', credentials: 'same-origin', cache: 'no-store',
    headers: { 'X-Foxworker-Request': '1', 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const out = await r.json().catch(() => ({}));
  if (!r.ok) { setStatus('refused: ' + (out.error || ('HTTP ' + r.status)), true); throw new Error(out.error); }
  return out;
}

function fmtNum(v) { return v === undefined || v === null || v < 0 ? '\u2014' : String(v); }
function fmtTime(ms) { return ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '\u2014'; }
function fmtSecs(s) { return s < 60 ? s.toFixed(1) + ' s' : (s / 60).toFixed(1) + ' min'; }
function enc(s) { return encodeURIComponent(s); }

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function cell(text, cls, field) {
  const td = el('td', cls ? { class: cls } : null);
  td.textContent = text;
  if (field) td.dataset.field = field;
  return td;
}

// ---- overview ----

function depthOf(q, key) { return q.depth && q.depth[key] !== undefined ? q.depth[key] : -1; }

function renderQueues(data) {
  state.queues = data.queues;
  const canChange = canMakeChanges();
  fill($('queues').tBodies[0], data.queues.map(q => {
    const tr = el('tr');
    tr.dataset.queue = q.name;
    const st = q.paused ? 'paused' : (q.crash_loop_paused ? 'held' : 'consuming');
    const mw = (q.middleware || []).map(m => m.type + (m.state ? ': ' + m.state : '')).join('; ');
    tr.append(cell(q.name, null, 'name'), cell(q.backend, null, 'backend'), cell(q.source, null, 'source'),
      cell(fmtNum(depthOf(q, 'backlog')), 'num', 'backlog'), cell(String(q.in_flight), 'num', 'in_flight'),
      cell(String(q.running), 'num', 'running'), cell(fmtNum(depthOf(q, 'dead_letters')), 'num', 'dead_letters'),
      cell(st + ((q.stuck || []).length ? ', ' + q.stuck.length + ' stuck' : ''), q.paused ? 'bad' : 'ok', 'state'),
      cell(mw, null, 'middleware'));
    const td = el('td');
    if (canChange) {
      td.append(el('button', { class: 'change', type: 'button', 'data-action': q.paused ? 'resume' : 'pause',
        onclick: () => change('/api/v1/queues/' + enc(q.name) + '/' + (q.paused ? 'resume' : 'pause')).then(refresh) },
        q.paused ? 'Resume' : 'Pause'));
    }
    tr.append(td);
    return tr;
  }));
  fill($('backends').tBodies[0], data.backends.map(b => {
    const tr = el('tr');
    tr.dataset.backend = b.name;
    tr.append(cell(b.name), cell(b.type), cell(b.connected ? 'yes' : 'no', b.connected ? 'ok' : 'bad', 'connected'),
      cell(String(b.reconnects), 'num', 'reconnects'), cell(b.last_error || '', null, 'last_error'));
    return tr;
  }));
  for (const sel of [$('dead-queue'), $('sched-queue')]) {
    const cur = sel.value;
    const names = data.queues.map(q => q.name);
    if ([...sel.options].map(o => o.value).join() !== names.join()) {
      sel.replaceChildren(...names.map(n => el('option', { value: n }, n)));
      if (names.includes(cur)) sel.value = cur;
    }
  }
}

function renderPlugins(data) {
  fill($('plugins').tBodies[0], data.plugins.map(p => {
    const tr = el('tr');
    tr.append(cell(p.name), cell(p.version), cell(p.instance_model), cell(p.handlers.join(', ')));
    return tr;
  }));
}

const SVG = 'http://www.w3.org/2000/svg';
function chart(title, points, series) {
  const w = 360, h = 90;
  const box = el('div', { class: 'chart' });
  box.append(el('h3', null, title));
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  let max = 0;
  for (const p of points) for (const s of series) { const v = p[s.key]; if (v !== null && v > max) max = v; }
  if (max <= 0) max = 1;
  const t0 = points.length ? points[0].t : 0, t1 = points.length ? points[points.length - 1].t : 1;
  const span = Math.max(1, t1 - t0);
  series.forEach((s, i) => {
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('class', 'l' + (i + 1));
    line.setAttribute('points', points.filter(p => p[s.key] !== null)
      .map(p => ((p.t - t0) / span * w).toFixed(1) + ',' + (h - 2 - p[s.key] / max * (h - 4)).toFixed(1)).join(' '));
    svg.append(line);
  });
  box.append(svg);
  const last = points.length ? points[points.length - 1] : null;
  box.append(el('div', { class: 'legend' }, series.map(s => s.label + ' ' +
    (last && last[s.key] !== null ? s.fmt(last[s.key]) : '\u2014')).join(' \u00b7 ') + ' \u00b7 max ' + series[0].fmt(max)));
  return box;
}

function renderHistory(data) {
  const boxes = [];
  const rate = v => v.toFixed(2) + '/s';
  const ms = v => (v * 1000).toFixed(1) + ' ms';
  for (const [name, points] of Object.entries(data.queues)) {
    boxes.push(chart(name + ': processed and failed per second', points,
      [{ key: 'processed', label: 'processed', fmt: rate }, { key: 'failed', label: 'failed', fmt: rate }]));
    boxes.push(chart(name + ': handler latency', points,
      [{ key: 'p50_s', label: 'p50', fmt: ms }, { key: 'p95_s', label: 'p95', fmt: ms }, { key: 'p99_s', label: 'p99', fmt: ms }]));
    const count = v => String(Math.round(v));
    boxes.push(chart(name + ': backlog and in flight', points,
      [{ key: 'backlog', label: 'backlog', fmt: count }, { key: 'in_flight', label: 'in flight', fmt: count }]));
  }
  $('charts').replaceChildren(...boxes);
}

// ---- running ----

function renderRunning(data) {
  fill($('running').tBodies[0], data.running.map(j => {
    const tr = el('tr', j.stuck ? { class: 'bad' } : null);
    tr.append(cell(j.queue), cell(j.handler), cell(j.message_id), cell(String(j.attempt), 'num'),
      cell(fmtSecs(j.running_for_s), 'num'), cell(j.stuck ? 'stuck' : ''));
    return tr;
  }));
}

// ---- dead letters ----

function deadPath(suffix) { return '/api/v1/queues/' + enc($('dead-queue').value) + '/dead' + (suffix || ''); }

async function loadDead() {
  const q = $('dead-queue').value;
  if (!q) return;
  const reason = $('dead-reason').value;
  const page = await getJson(deadPath('?limit=100&reason=' + enc(reason)));
  state.letters = page.letters;
  $('dead-total').textContent = page.total + (page.total_exact ? '' : '+') + ' matching';
  const canChange = canMakeChanges();
  fill($('dead').tBodies[0], page.letters.map(l => {
    const tr = el('tr');
    tr.dataset.id = l.id;
    const box = el('input', { type: 'checkbox', class: 'pick' });
    box.dataset.id = l.id;
    tr.append(el('td', null, box), cell(l.id, null, 'id'), cell(l.type, null, 'type'), cell(l.reason, null, 'reason'),
      cell(String(l.attempts), 'num'), cell(fmtTime(l.first_seen_ms)), cell(fmtTime(l.failed_at_ms)),
      cell(String(l.payload_bytes), 'num'));
    const td = el('td');
    td.append(el('button', { type: 'button', class: 'show', onclick: () => showLetter(l.id) }, 'Show'));
    if (canChange) td.append(el('button', { type: 'button', class: 'change retry',
      onclick: () => change(deadPath('/' + enc(l.id) + '/retry')).then(afterDeadChange) }, 'Retry'));
    tr.append(td);
    return tr;
  }));
}

function afterDeadChange(r) {
  setStatus('done: ' + (r.count !== undefined ? r.count : 0) + ' letter(s)');
  $('letter').hidden = true;
  return loadDead();
}

function picked() { return [...document.querySelectorAll('#dead input.pick:checked')].map(b => b.dataset.id); }

async function showLetter(id) {
  const d = await getJson(deadPath('/' + enc(id)));
  state.letter = id;
  $('letter').hidden = false;
  $('letter-id').textContent = d.letter.id;
  $('letter-reason').textContent = d.letter.reason;
  $('letter-kind').textContent = d.payload_kind + (d.payload_truncated ? ', cut' : '');
  $('letter-payload').textContent = d.payload;
  const pairs = list => list.map(([k, v]) => { const tr = el('tr'); tr.append(cell(k), cell(v)); return tr; });
  fill($('letter-headers').tBodies[0], pairs(d.headers));
  fill($('letter-props').tBodies[0], pairs(d.properties));
}

// ---- scheduled ----

async function loadScheduled() {
  const q = $('sched-queue').value;
  if (!q) return;
  try {
    const d = await getJson('/api/v1/queues/' + enc(q) + '/scheduled?limit=200');
    $('sched-note').textContent = d.scheduled.length + ' waiting';
    fill($('scheduled').tBodies[0], d.scheduled.map(j => {
      const tr = el('tr');
      tr.append(cell(j.message_id), cell(j.type), cell(String(j.attempt), 'num'), cell(fmtTime(j.due_ms)), cell(j.last_error));
      return tr;
    }));
  } catch (e) {
    $('sched-note').textContent = e.message;
    fill($('scheduled').tBodies[0], []);
  }
}

// ---- session, navigation, polling ----

function canMakeChanges() {
  const s = state.session;
  return !!s && !s.read_only && s.authenticated;
}

function renderSession() {
  const s = state.session;
  document.body.classList.toggle('read-only', !canMakeChanges());
  if (s.read_only) for (const b of document.querySelectorAll('.change')) b.remove();
  $('mode').textContent = s.read_only ? 'read-only' : (s.authenticated ? 'logged in' : (s.token_configured ? '' : 'changes disabled (no token_file)'))
    + (s.quiet ? ' \u00b7 QUIET' : '');
  $('login').hidden = s.read_only || s.authenticated || !s.token_configured;
  $('logout').hidden = !s.authenticated;
  const q = $('quiet');
  if (q) { q.hidden = !canMakeChanges(); q.textContent = s.quiet ? 'Unquiet' : 'Quiet'; }
}

async function refresh() {
  try {
    state.session = await getJson('/api/v1/session');
    renderSession();
    if (state.view === 'overview') {
      renderQueues(await getJson('/api/v1/queues'));
      renderHistory(await getJson('/api/v1/history'));
    } else if (state.view === 'running') {
      renderRunning(await getJson('/api/v1/running'));
    } else if (state.queues.length === 0) {
      renderQueues(await getJson('/api/v1/queues'));
    }
    document.body.dataset.loaded = String(Date.now());
  } catch (e) {
    setStatus(e.message, true);
  }
}

function route() {
  const h = (location.hash || '#overview').slice(1);
  if (h === 'login-failed') { setStatus('wrong token', true); history.replaceState(null, '', '#overview'); }
  state.view = ['overview', 'running', 'dead', 'scheduled'].includes(h) ? h : 'overview';
  for (const v of ['overview', 'running', 'dead', 'scheduled']) {
    $('view-' + v).hidden = v !== state.view;
    $('nav-' + v).classList.toggle('active', v === state.view);
  }
  refresh().then(() => {
    if (state.view === 'dead') loadDead().catch(e => setStatus(e.message, true));
    if (state.view === 'scheduled') loadScheduled();
  });
}

function init() {
  window.addEventListener('hashchange', route);
  $('quiet').addEventListener('click', () =>
    change(state.session.quiet ? '/api/v1/unquiet' : '/api/v1/quiet').then(refresh));
  $('dead-refresh').addEventListener('click', () => loadDead().catch(e => setStatus(e.message, true)));
  $('dead-queue').addEventListener('change', () => loadDead().catch(e => setStatus(e.message, true)));
  $('sched-queue').addEventListener('change', loadScheduled);
  $('dead-all').addEventListener('change', e => {
    for (const b of document.querySelectorAll('#dead input.pick')) b.checked = e.target.checked;
  });
  const sel = (what) => {
    const ids = picked();
    if (!ids.length) { setStatus('select letters first', true); return; }
    change(deadPath('/' + what), 'POST', { ids }).then(afterDeadChange);
  };
  const all = (what) => {
    const reason = $('dead-reason').value;
    if (!confirm(what + ' every dead letter of ' + $('dead-queue').value +
      (reason ? ' whose reason contains "' + reason + '"' : '') + '?')) return;
    change(deadPath('/' + what), 'POST', { all: true, reason }).then(afterDeadChange);
  };
  $('dead-retry-selected').addEventListener('click', () => sel('retry'));
  $('dead-delete-selected').addEventListener('click', () => sel('delete'));
  $('dead-retry-all').addEventListener('click', () => all('retry'));
  $('dead-delete-all').addEventListener('click', () => all('delete'));
  $('letter-retry').addEventListener('click', () => change(deadPath('/' + enc(state.letter) + '/retry')).then(afterDeadChange));
  $('letter-delete').addEventListener('click', () => change(deadPath('/' + enc(state.letter)), 'DELETE').then(afterDeadChange));
  getJson('/api/v1/plugins').then(renderPlugins).catch(() => {});
  route();
  // Polls only while the page is visible: a hidden tab costs the daemon nothing.
  setInterval(() => { if (!document.hidden && (state.view === 'overview' || state.view === 'running')) refresh(); }, POLL_MS);
}

document.addEventListener('DOMContentLoaded', init);
