// The request inspector's page: a live list (server-sent events from the
// agent), a detail view, replay, edit and replay, copy as curl. Plain
// browser JavaScript, no build step, no network beyond the agent itself.
// Captured content is only ever inserted as text, never as HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  const state = {
    items: new Map(), // id -> summary
    selected: null,
    detail: null,
    detailMissing: false,
    status: null,
    filter: { q: '', method: '', status: '' },
    tab: 'request',
    modes: {}, // "request"/"response" -> view mode chosen
    fresh: new Set(),
    live: false,
    blobUrls: [],
    detailToken: 0,
  };

  // ------------------------------------------------------------ helpers

  function el(tag, props, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k === 'data') Object.assign(node.dataset, v);
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid == null || kid === false) continue;
      node.append(kid instanceof Node ? kid : String(kid));
    }
    return node;
  }

  function fmtBytes(n) {
    if (n == null) return '–';
    if (n < 1000) return `${n} B`;
    const units = ['KB', 'MB', 'GB'];
    let v = n;
    let u = -1;
    do {
      v /= 1024;
      u += 1;
    } while (v >= 1000 && u < units.length - 1);
    return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
  }

  function fmtDuration(ms) {
    if (ms == null) return '…';
    if (ms < 1) return `${ms.toFixed(2)} ms`;
    if (ms < 10) return `${ms.toFixed(1)} ms`;
    if (ms < 10000) return `${Math.round(ms)} ms`;
    return `${(ms / 1000).toFixed(1)} s`;
  }

  const pad = (n, w = 2) => String(n).padStart(w, '0');

  function fmtTime(iso, withMs = true) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return withMs ? `${t}.${pad(d.getMilliseconds(), 3)}` : t;
  }

  function fmtDateTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '–';
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtTime(iso)}`;
  }

  function statusClass(s) {
    if (s.state === 'in_flight') return 's-pending';
    if (s.state === 'failed') return 's-failed';
    if (s.state === 'refused') return 's-refused';
    return s.status ? `s${String(s.status)[0]}` : '';
  }

  function b64ToBytes(b64) {
    const bin = atob(b64 || '');
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
    return out;
  }

  function bytesToB64(bytes) {
    let bin = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(bin);
  }

  function headerValue(headers, name) {
    const lower = name.toLowerCase();
    const found = (headers || []).find(([n]) => n.toLowerCase() === lower);
    return found ? found[1] : '';
  }

  function utf8(bytes) {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return null;
    }
  }

  function toast(text, bad = false) {
    const t = $('toast');
    t.textContent = text;
    t.classList.toggle('bad', bad);
    t.classList.add('show');
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => t.classList.remove('show'), bad ? 6000 : 2600);
  }

  async function api(path, options) {
    const res = await fetch(path, options);
    const type = res.headers.get('content-type') || '';
    const body = type.includes('json') ? await res.json().catch(() => ({})) : await res.text();
    if (!res.ok) {
      const message = (body && body.error) || `${res.status} ${res.statusText}`;
      const err = new Error(message);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  // ------------------------------------------------------------ status

  const CONNECTION_TEXT = {
    starting: 'starting',
    connecting: 'connecting…',
    connected: 'online',
    reconnecting: 'reconnecting…',
    stopped: 'agent stopped',
    offline: 'inspector offline',
  };

  function setStatus(status) {
    state.status = status;
    renderStatus();
  }

  function renderStatus() {
    const s = state.status;
    const connection = state.live ? (s ? s.connection : 'starting') : 'offline';
    $('conn-dot').dataset.state = connection;
    $('conn-text').textContent = CONNECTION_TEXT[connection] || connection;
    let title = 'Connection to the tunnel server';
    if (!state.live) title = 'The page lost the agent: is `tunnel` still running? It reconnects by itself.';
    else if (s && s.reason) title = s.reason;
    $('tunnel').title = title;
    const url = $('public-url');
    if (s && s.public_url) {
      url.textContent = s.public_url;
      url.href = s.public_url;
    } else {
      url.textContent = '';
      url.removeAttribute('href');
    }
    $('arrow').hidden = !(s && s.public_url && s.target);
    $('target').textContent = (s && s.target) || '';
    renderCounts();
  }

  function renderCounts(shown) {
    const n = state.items.size;
    const max = state.status ? state.status.limits.max_requests : null;
    let text = `${n} ${n === 1 ? 'request' : 'requests'}`;
    if (max) text += ` (keeps ${max})`;
    if (shown != null && shown !== n) text = `${shown} of ${text}`;
    $('counts').textContent = text;
  }

  // ------------------------------------------------------------ list

  function matches(s) {
    const f = state.filter;
    if (f.method && s.method.toUpperCase() !== f.method) return false;
    if (f.status === 'replay') {
      if (s.replay_of == null) return false;
    } else if (f.status === 'error') {
      if (s.state !== 'failed') return false;
    } else if (f.status === 'refused') {
      if (s.state !== 'refused') return false;
    } else if (f.status) {
      if (s.status == null || String(s.status)[0] !== f.status[0]) return false;
    }
    const q = f.q.trim().toLowerCase();
    if (q) {
      const hay = [s.method, s.uri, s.status == null ? '' : String(s.status), s.request_id, s.error || '', s.refused ? s.refused.reason : ''];
      if (!hay.some((h) => h.toLowerCase().includes(q))) return false;
    }
    return true;
  }

  function visible() {
    return [...state.items.values()].sort((a, b) => b.id - a.id).filter(matches);
  }

  let renderQueued = false;
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      renderList();
    });
  }

  function pathNode(uri) {
    const q = uri.indexOf('?');
    if (q < 0) return el('span', { class: 'path-text', text: uri });
    return el('span', { class: 'path-text' }, uri.slice(0, q), el('span', { class: 'query', text: uri.slice(q) }));
  }

  function rowFor(s) {
    const status = s.state === 'in_flight' ? '' : String(s.status ?? '');
    const classes = ['row'];
    if (state.fresh.has(s.id)) classes.push('fresh');
    if (s.replay_of != null) classes.push('is-replay');
    return el('li', {
      class: classes.join(' '),
      role: 'option',
      'aria-selected': String(s.id === state.selected),
      title: s.error || (s.refused ? `Refused at the edge: ${s.refused.reason}` : `${s.method} ${s.uri}`),
      data: { id: String(s.id), method: s.method, path: s.uri, state: s.state, status },
    },
    el('span', { class: 'time', text: fmtTime(s.started_at) }),
    el('span', {}, el('span', { class: `method m-${s.method}`, text: s.method })),
    el('span', { class: 'path' },
      s.replay_of != null ? el('span', { class: 'badge replay', title: `Replay of #${s.replay_of}`, text: '↻ replay' }) : null,
      s.refused ? el('span', { class: 'badge refused', title: `Refused at the edge by the access policy: ${s.refused.reason}`, text: 'refused at the edge' }) : null,
      pathNode(s.uri),
      s.truncated ? el('span', { class: 'badge cut', title: 'A body was cut in the capture', text: 'cut' }) : null),
    el('span', { class: `status ${statusClass(s)}`, text: status }),
    el('span', { class: 'dur', text: fmtDuration(s.duration_ms) }),
    el('span', { class: 'size', text: `${fmtBytes(s.request_size)} / ${fmtBytes(s.response_size)}` }));
  }

  function renderList() {
    const rows = visible();
    const frag = document.createDocumentFragment();
    for (const s of rows) frag.append(rowFor(s));
    $('list').replaceChildren(frag);
    state.fresh.clear();
    const empty = $('empty');
    empty.hidden = rows.length > 0;
    if (!rows.length) {
      const title = empty.querySelector('.empty-title');
      const text = $('empty-text');
      if (state.items.size) {
        title.textContent = 'Nothing matches';
        text.textContent = 'No captured request matches the filter.';
      } else {
        title.textContent = 'Waiting for requests';
        const url = state.status && state.status.public_url;
        text.replaceChildren(...(url
          ? ['Send a request to ', el('code', { text: url }), ' and it shows up here as it happens.']
          : ['Every request to your tunnel shows up here as it happens.']));
      }
    }
    renderCounts(rows.length);
  }

  // ------------------------------------------------------------ selection and detail

  function select(id, { scroll = true } = {}) {
    if (id == null) return;
    state.selected = id;
    for (const row of $('list').children) {
      const on = Number(row.dataset.id) === id;
      row.setAttribute('aria-selected', String(on));
      if (on && scroll) row.scrollIntoView({ block: 'nearest' });
    }
    loadDetail();
  }

  async function loadDetail() {
    const id = state.selected;
    const token = ++state.detailToken;
    try {
      const detail = await api(`/api/requests/${id}`);
      if (token !== state.detailToken) return;
      state.detail = detail;
      state.detailMissing = false;
    } catch (err) {
      if (token !== state.detailToken) return;
      state.detail = null;
      state.detailMissing = err.status === 404;
      if (err.status !== 404) toast(`Could not load request #${id}: ${err.message}`, true);
    }
    renderDetail();
  }

  let detailQueued = null;
  function refreshDetailSoon() {
    clearTimeout(detailQueued);
    detailQueued = setTimeout(loadDetail, 60);
  }

  function revokeBlobs() {
    for (const url of state.blobUrls) URL.revokeObjectURL(url);
    state.blobUrls = [];
  }

  function renderDetail() {
    revokeBlobs();
    const pane = $('detail');
    const d = state.detail;
    if (!d) {
      const title = state.detailMissing ? 'Request no longer kept' : 'No request selected';
      const text = state.detailMissing
        ? 'It was dropped to stay within the inspector\'s limits (see --inspect-requests and --inspect-memory).'
        : 'Pick one on the left to see its headers, bodies and timing.';
      pane.replaceChildren(el('div', { class: 'placeholder' },
        el('div', { class: 'placeholder-title', text: title }), el('div', { text })));
      return;
    }
    const s = d;
    const refused = s.refused;
    const statusText = s.state === 'in_flight'
      ? 'waiting'
      : refused
        ? `${s.status} refused at the edge`
        : s.failure
        ? `${s.failure.status} ${s.failure.code.replaceAll('_', ' ')}`
        : `${s.response.status} ${s.response.reason}`.trim();

    const meta = el('div', { class: 'detail-meta' },
      el('span', { class: `status ${statusClass(s)}`, id: 'detail-status', text: statusText }),
      el('span', {}, el('b', { text: fmtDuration(s.duration_ms) }), ' local service'),
      el('span', { title: 'Request body / response body' }, '↑ ', el('b', { text: fmtBytes(s.request_size) }), '  ↓ ', el('b', { text: fmtBytes(s.response_size) })),
      el('span', { title: s.started_at, text: fmtDateTime(s.started_at) }),
      el('span', { text: `#${s.id}` }),
      s.replay_of != null
        ? el('a', { href: '#', class: 'badge replay', id: 'replay-of', onclick: (e) => { e.preventDefault(); select(s.replay_of); }, text: `↻ replay of #${s.replay_of}` })
        : null);

    // A refused request never reached the agent: nothing to replay.
    const noReplay = refused ? { disabled: '', title: 'Refused at the edge: the local service never saw it, and nothing of it was captured to replay' } : {};
    const actions = el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'btn primary', id: 'replay', title: 'Send this request to the local service again, exactly as captured (r)', onclick: () => replay(s.id), ...noReplay },
        icon('M4 10a6 6 0 0 1 10.24-4.24L16 4v5h-5l1.82-1.82A4 4 0 1 0 14 11.2l1.9.63A6 6 0 0 1 4 10Z'), 'Replay'),
      el('button', { type: 'button', class: 'btn', id: 'edit-replay', title: 'Change the method, path, headers or body, then replay (e)', onclick: () => openEdit(d), ...noReplay },
        icon('M13.6 3.2a2 2 0 0 1 2.8 2.8l-8.7 8.7-3.7.9.9-3.7 8.7-8.7Z'), 'Edit & replay'),
      el('button', { type: 'button', class: 'btn', id: 'copy-curl', title: 'Copy this request as a curl command (c)', onclick: () => copyCurl(s.id) },
        icon('M7 3h8a2 2 0 0 1 2 2v8h-2V5H7V3Zm-2 4h7a2 2 0 0 1 2 2v7a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V9a2 2 0 0 1 2-2Zm0 2v7h7V9H5Z'), 'Copy as curl'));

    const head = el('div', { class: 'detail-head' },
      el('div', { class: 'detail-line' },
        el('span', { class: `method m-${s.method}`, text: s.method }),
        el('span', { class: 'path-full', text: s.uri })),
      meta, actions);

    const failure = s.failure
      ? el('div', { class: 'error-banner', role: 'alert' }, el('b', { text: String(s.failure.status) }), ' ', s.failure.message)
      : refused
        ? el('div', { class: 'error-banner refused', id: 'refused-banner', role: 'alert' },
          el('b', { text: String(s.status) }), ' Refused at the edge by the tunnel\'s access policy: ', refused.reason,
          refused.source_ip ? ` (from ${refused.source_ip})` : '',
          '. It never reached the agent: no headers or body were kept, and it cannot be replayed.')
        : null;

    const tabs = ['request', 'response', 'timing'];
    const labels = {
      request: ['Request', s.request.headers.length],
      response: ['Response', s.response ? s.response.headers.length : null],
      timing: ['Timing', null],
    };
    const tabBar = el('nav', { class: 'tabs', role: 'tablist' }, tabs.map((t) => el('button', {
      type: 'button',
      class: 'tab',
      role: 'tab',
      id: `tab-${t}`,
      'aria-selected': String(state.tab === t),
      onclick: () => { state.tab = t; renderDetail(); },
    }, labels[t][0], labels[t][1] != null ? el('span', { class: 'count', text: String(labels[t][1]) }) : null)));

    const body = el('div', { class: 'tab-body', id: 'tab-body', role: 'tabpanel' });
    if (state.tab === 'request') {
      body.append(
        el('p', { class: 'start-line', text: `${s.request.method} ${s.request.uri} HTTP/1.1` }),
        bodySection('request', s.id, s.request.headers, s.request.body),
        headersSection(s.request.headers));
    } else if (state.tab === 'response') {
      if (s.response) {
        body.append(
          el('p', { class: 'start-line', text: `HTTP/1.1 ${s.response.status} ${s.response.reason}` }),
          bodySection('response', s.id, s.response.headers, s.response.body),
          headersSection(s.response.headers));
      } else if (refused) {
        body.append(el('p', { class: 'none', text: 'Refused at the edge: the local service never saw this request.' }));
      } else if (s.state === 'in_flight') {
        body.append(el('p', { class: 'none', text: 'Waiting for the local service to answer…' }));
      } else {
        body.append(el('p', { class: 'none', text: 'The local service gave no response; the visitor got the error above.' }));
      }
    } else {
      body.append(timingSection(s));
    }
    pane.replaceChildren(head, ...(failure ? [failure] : []), tabBar, body);
  }

  function icon(path) {
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('viewBox', '0 0 20 20');
    svg.setAttribute('aria-hidden', 'true');
    const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    p.setAttribute('d', path);
    svg.append(p);
    return svg;
  }

  function headersSection(headers) {
    const title = el('div', { class: 'section-title' }, `Headers · ${headers.length}`);
    if (!headers.length) return el('div', {}, title, el('div', { class: 'none', text: 'No headers' }));
    const table = el('table', { class: 'headers' }, el('tbody', {}, headers.map(([n, v]) => el('tr', {},
      el('td', { title: n, text: n }), el('td', { text: v })))));
    return el('div', {}, title, table);
  }

  function timingSection(s) {
    const rows = [];
    const add = (label, value) => rows.push(el('dt', { text: label }), el('dd', { text: value }));
    if (s.server_received_at) add('Tunnel server received it', fmtDateTime(s.server_received_at));
    add('Agent received it', fmtDateTime(s.started_at));
    if (s.server_received_at) {
      const hop = new Date(s.started_at) - new Date(s.server_received_at);
      add('Through the tunnel', `${hop} ms (clocks of two machines)`);
    }
    add('Local service took', s.duration_ms == null ? 'still waiting' : fmtDuration(s.duration_ms));
    if (s.duration_ms != null) {
      add('Answered at', fmtDateTime(new Date(new Date(s.started_at).getTime() + s.duration_ms).toISOString()));
    }
    add('Request id', s.request_id);
    const wrap = el('div', {}, el('div', { class: 'section-title', text: 'Timing' }), el('dl', { class: 'timing' }, rows));
    return wrap;
  }

  // ------------------------------------------------------------ bodies

  function essenceOf(headers) {
    return headerValue(headers, 'content-type').split(';')[0].trim().toLowerCase();
  }

  function detectKind(essence, bytes, text) {
    if (essence.startsWith('image/')) return 'image';
    if (essence === 'application/x-www-form-urlencoded' && text != null) return 'form';
    if (essence.startsWith('multipart/form-data')) return 'multipart';
    if (text != null) {
      const t = text.trim();
      if (essence.includes('json') || ((t.startsWith('{') || t.startsWith('[')) && !essence.startsWith('text/html'))) {
        try {
          JSON.parse(t);
          return 'json';
        } catch {
          /* not JSON after all */
        }
      }
      return 'text';
    }
    return 'binary';
  }

  const MODES = {
    json: ['pretty', 'raw', 'hex'],
    form: ['fields', 'raw', 'hex'],
    multipart: ['parts', 'raw', 'hex'],
    image: ['preview', 'hex'],
    text: ['text', 'hex'],
    binary: ['hex'],
  };
  const MODE_LABEL = { pretty: 'Pretty', raw: 'Raw', hex: 'Hex', fields: 'Fields', parts: 'Parts', preview: 'Image', text: 'Text' };

  function bodySection(part, id, headers, body) {
    const title = el('div', { class: 'section-title' }, 'Body', el('span', { class: 'spacer' }));
    const wrap = el('div', { class: 'body-section', id: `${part}-body` }, title);
    if (!body || body.size === 0) {
      wrap.append(el('div', { class: 'none', text: 'No body' }));
      return wrap;
    }
    const content = el('div', {});
    wrap.append(content);
    fillBody(content, part, id, headers, body);
    return wrap;
  }

  async function decompress(bytes, format) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream(format));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  async function fillBody(content, part, id, headers, body) {
    let bytes = b64ToBytes(body.base64);
    const essence = essenceOf(headers);
    const encoding = headerValue(headers, 'content-encoding').trim().toLowerCase();
    let decodedFrom = null;
    if ((encoding === 'gzip' || encoding === 'deflate') && !body.truncated && 'DecompressionStream' in window) {
      try {
        bytes = await decompress(bytes, encoding);
        decodedFrom = encoding;
      } catch {
        /* shown as it came */
      }
    }
    const text = utf8(bytes);
    const kind = detectKind(essence, bytes, text);
    const modes = MODES[kind];
    let mode = state.modes[part];
    if (!modes.includes(mode)) [mode] = modes;

    const bar = el('div', { class: 'body-bar' },
      el('span', { text: essence || 'no content type' }),
      el('span', { text: `· ${fmtBytes(body.size)}` }),
      decodedFrom ? el('span', { class: 'badge replay', text: `decoded from ${decodedFrom}` }) : null,
      body.truncated
        ? el('span', { class: 'badge cut', title: 'Raise --inspect-body-limit to keep more', text: `cut: first ${fmtBytes(body.captured)} of ${fmtBytes(body.size)}` })
        : null,
      el('span', { class: 'spacer' }),
      modes.length > 1 ? el('span', { class: 'seg', role: 'group' }, modes.map((m) => el('button', {
        type: 'button',
        'aria-pressed': String(m === mode),
        data: { mode: m },
        onclick: () => { state.modes[part] = m; renderDetail(); },
      }, MODE_LABEL[m]))) : null,
      el('a', { class: 'btn ghost', href: `/api/requests/${id}/${part}/body?download=1`, download: '', title: 'Download the captured bytes' }, 'Download'));

    let view;
    if (mode === 'hex') view = hexView(bytes);
    else if (mode === 'preview') view = imageView(bytes, essence);
    else if (mode === 'pretty') view = jsonView(text);
    else if (mode === 'fields') view = formView(text);
    else if (mode === 'parts') view = multipartView(bytes, headerValue(headers, 'content-type'));
    else view = el('pre', { class: 'body-view', text });
    content.replaceChildren(bar, view);
  }

  function jsonView(text) {
    let pretty;
    try {
      pretty = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return el('pre', { class: 'body-view', text });
    }
    const pre = el('pre', { class: 'body-view json' });
    const re = /("(?:\\u[a-fA-F0-9]{4}|\\[^u]|[^\\"])*")(\s*:)?|\b(true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
    let last = 0;
    let m;
    while ((m = re.exec(pretty))) {
      if (m.index > last) pre.append(pretty.slice(last, m.index));
      if (m[1]) {
        pre.append(el('span', { class: m[2] ? 'j-key' : 'j-str', text: m[1] }));
        if (m[2]) pre.append(m[2]);
      } else {
        pre.append(el('span', { class: m[3] ? 'j-lit' : 'j-num', text: m[0] }));
      }
      last = re.lastIndex;
    }
    pre.append(pretty.slice(last));
    return pre;
  }

  function formView(text) {
    const params = [...new URLSearchParams(text)];
    if (!params.length) return el('pre', { class: 'body-view', text });
    return el('table', { class: 'headers form-table' }, el('tbody', {}, params.map(([n, v]) => el('tr', {},
      el('td', { title: n, text: n }), el('td', { text: v })))));
  }

  function multipartView(bytes, contentType) {
    const m = /boundary="?([^";]+)"?/i.exec(contentType);
    if (!m) return hexView(bytes);
    // Bytes as Latin-1: one character per byte, so offsets stay bytes.
    let raw = '';
    for (let i = 0; i < bytes.length; i += 0x8000) raw += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    const delimiter = `--${m[1]}`;
    const rows = [];
    for (let piece of raw.split(delimiter).slice(1)) {
      if (piece.startsWith('--')) break;
      piece = piece.replace(/^\r?\n/, '').replace(/\r?\n$/, '');
      const split = piece.indexOf('\r\n\r\n');
      const head = split < 0 ? piece : piece.slice(0, split);
      const data = split < 0 ? '' : piece.slice(split + 4);
      const disposition = /content-disposition:([^\r\n]*)/i.exec(head);
      const name = disposition && /name="([^"]*)"/i.exec(disposition[1]);
      const file = disposition && /filename="([^"]*)"/i.exec(disposition[1]);
      const type = /content-type:\s*([^\r\n]*)/i.exec(head);
      const dataBytes = Uint8Array.from(data, (c) => c.charCodeAt(0));
      const asText = utf8(dataBytes);
      let value;
      if (file) value = `file ${file[1]} (${type ? type[1] : 'no type'}, ${fmtBytes(dataBytes.length)})`;
      else value = asText != null ? asText : `${fmtBytes(dataBytes.length)} of binary data`;
      rows.push(el('tr', {}, el('td', { text: name ? name[1] : '(no name)' }), el('td', { text: value })));
    }
    if (!rows.length) return hexView(bytes);
    return el('table', { class: 'headers form-table' }, el('tbody', {}, rows));
  }

  function imageView(bytes, essence) {
    const url = URL.createObjectURL(new Blob([bytes], { type: essence }));
    state.blobUrls.push(url);
    return el('img', { class: 'body-img', src: url, alt: 'Captured image body' });
  }

  const HEX_LIMIT = 16 * 1024;
  function hexView(bytes) {
    const n = Math.min(bytes.length, HEX_LIMIT);
    const lines = [];
    for (let off = 0; off < n; off += 16) {
      const row = bytes.subarray(off, Math.min(off + 16, n));
      let hex = '';
      let ascii = '';
      for (let i = 0; i < 16; i += 1) {
        if (i < row.length) {
          hex += row[i].toString(16).padStart(2, '0');
          ascii += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : '.';
        } else {
          hex += '  ';
        }
        hex += i === 7 ? '  ' : ' ';
      }
      lines.push(`${off.toString(16).padStart(8, '0')}  ${hex} ${ascii}`);
    }
    const pre = el('pre', { class: 'body-view hex', text: lines.join('\n') });
    if (bytes.length <= HEX_LIMIT) return pre;
    return el('div', {}, pre, el('p', { class: 'note', text: `Showing the first ${fmtBytes(HEX_LIMIT)}; download the body for all of it.` }));
  }

  // ------------------------------------------------------------ actions

  async function replay(id, edits) {
    const button = $('replay');
    if (button && !edits) {
      button.disabled = true;
      button.lastChild.textContent = 'Replaying…';
    }
    try {
      const summary = await api(`/api/requests/${id}/replay`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(edits || {}),
      });
      state.items.set(summary.id, summary);
      const result = summary.state === 'failed' ? `failed (${summary.error})` : `${summary.status} in ${fmtDuration(summary.duration_ms)}`;
      toast(`Replayed #${id} as #${summary.id}: ${result}`, summary.state === 'failed');
      scheduleRender();
      select(summary.id);
      return summary;
    } catch (err) {
      toast(`Replay failed: ${err.message}`, true);
      throw err;
    } finally {
      if (button && button.isConnected) {
        button.disabled = false;
        button.lastChild.textContent = 'Replay';
      }
    }
  }

  async function copyCurl(id) {
    let command;
    try {
      command = (await api(`/api/requests/${id}/curl`)).trimEnd();
    } catch (err) {
      toast(`Could not build the curl command: ${err.message}`, true);
      return;
    }
    try {
      await navigator.clipboard.writeText(command);
      toast('Copied the curl command');
    } catch {
      // No clipboard access (permissions, an insecure origin): show it.
      $('curl-text').value = command;
      $('curl-dialog').showModal();
      $('curl-text').select();
    }
  }

  let editing = null;
  function openEdit(d) {
    editing = d;
    const body = d.request.body;
    const bytes = b64ToBytes(body.base64);
    const text = utf8(bytes);
    $('edit-method').value = d.request.method;
    $('edit-uri').value = d.request.uri;
    $('edit-headers').value = d.request.headers.map(([n, v]) => `${n}: ${v}`).join('\n');
    const area = $('edit-body');
    const note = $('edit-body-note');
    area.disabled = text == null;
    area.value = text == null ? '' : text;
    area.dataset.original = area.value;
    if (text == null) note.textContent = `(binary, ${fmtBytes(body.size)}: sent as captured)`;
    else if (body.truncated) note.textContent = `(cut in the capture: only the first ${fmtBytes(body.captured)} of ${fmtBytes(body.size)} are here; edit it to send this)`;
    else note.textContent = '';
    $('edit-error').textContent = '';
    $('edit-dialog').showModal();
    $('edit-uri').focus();
  }

  async function sendEdit(event) {
    event.preventDefault();
    const d = editing;
    if (!d) return;
    const headers = [];
    for (const line of $('edit-headers').value.split('\n')) {
      if (!line.trim()) continue;
      const colon = line.indexOf(':');
      if (colon <= 0) {
        $('edit-error').textContent = `Not a header line (Name: value): ${line}`;
        return;
      }
      headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
    }
    const edits = { method: $('edit-method').value.trim(), uri: $('edit-uri').value.trim(), headers };
    const area = $('edit-body');
    if (area.disabled) {
      edits.body_base64 = d.request.body.truncated ? undefined : d.request.body.base64;
    } else if (!(d.request.body.truncated && area.value === area.dataset.original)) {
      edits.body = area.value;
    }
    const send = $('edit-send');
    send.disabled = true;
    try {
      await replay(d.id, edits);
      $('edit-dialog').close();
    } catch (err) {
      $('edit-error').textContent = err.message;
    } finally {
      send.disabled = false;
    }
  }

  async function clearAll() {
    try {
      await api('/api/requests', { method: 'DELETE' });
      toast('Cleared every captured request');
    } catch (err) {
      toast(`Could not clear: ${err.message}`, true);
    }
  }

  function move(delta) {
    const rows = visible();
    if (!rows.length) return;
    const index = rows.findIndex((s) => s.id === state.selected);
    const next = index < 0 ? 0 : Math.max(0, Math.min(rows.length - 1, index + delta));
    select(rows[next].id);
  }

  // ------------------------------------------------------------ live updates

  function connect() {
    const events = new EventSource('/api/events');
    events.addEventListener('open', () => {
      state.live = true;
      renderStatus();
    });
    events.addEventListener('error', () => {
      state.live = false;
      renderStatus();
    });
    events.addEventListener('snapshot', (e) => {
      const data = JSON.parse(e.data);
      state.items = new Map(data.requests.map((s) => [s.id, s]));
      state.live = true;
      setStatus(data.status);
      scheduleRender();
      if (state.selected != null) refreshDetailSoon();
    });
    events.addEventListener('request', (e) => {
      const s = JSON.parse(e.data);
      if (!state.items.has(s.id)) state.fresh.add(s.id);
      state.items.set(s.id, s);
      scheduleRender();
      if (s.id === state.selected) refreshDetailSoon();
    });
    events.addEventListener('evicted', (e) => {
      for (const id of JSON.parse(e.data)) state.items.delete(id);
      scheduleRender();
      if (state.selected != null && !state.items.has(state.selected)) refreshDetailSoon();
    });
    events.addEventListener('cleared', () => {
      state.items.clear();
      state.selected = null;
      state.detail = null;
      state.detailMissing = false;
      scheduleRender();
      renderDetail();
    });
    events.addEventListener('status', (e) => setStatus(JSON.parse(e.data)));
  }

  // ------------------------------------------------------------ wiring

  function setChip(status) {
    state.filter.status = status;
    for (const chip of $('chips').children) chip.setAttribute('aria-pressed', String(chip.dataset.status === status));
    scheduleRender();
  }

  function init() {
    $('list').addEventListener('click', (e) => {
      const row = e.target.closest('.row');
      if (row) select(Number(row.dataset.id), { scroll: false });
    });
    for (const type of ['input', 'change', 'search']) {
      $('q').addEventListener(type, (e) => {
        state.filter.q = e.target.value;
        scheduleRender();
      });
    }
    $('method').addEventListener('change', (e) => {
      state.filter.method = e.target.value;
      scheduleRender();
    });
    $('chips').addEventListener('click', (e) => {
      const chip = e.target.closest('.chip');
      if (chip) setChip(chip.dataset.status);
    });
    $('clear').addEventListener('click', clearAll);
    $('edit-form').addEventListener('submit', sendEdit);
    $('edit-cancel').addEventListener('click', () => $('edit-dialog').close());
    document.addEventListener('keydown', (e) => {
      if (e.target.closest('input, textarea, select')) {
        if (e.key === 'Escape') e.target.blur();
        return;
      }
      if (document.querySelector('dialog[open]') || e.metaKey || e.ctrlKey || e.altKey) return;
      const actions = {
        '/': () => $('q').focus(),
        j: () => move(1),
        ArrowDown: () => move(1),
        k: () => move(-1),
        ArrowUp: () => move(-1),
        r: () => state.detail && !state.detail.refused && replay(state.detail.id).catch(() => {}),
        e: () => state.detail && !state.detail.refused && openEdit(state.detail),
        c: () => state.detail && copyCurl(state.detail.id),
      };
      const action = actions[e.key];
      if (action) {
        e.preventDefault();
        action();
      }
    });
    renderStatus();
    renderList();
    connect();
  }

  init();
})();
