// Small DOM helpers: an element builder that never parses HTML (every
// server string lands in a text node), tables, tabs, the error box and the
// "working…" state of a button during a request.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'selected') {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A visible error message near the action that caused it; empty (and so
// hidden by the stylesheet) until `showError`.
export function errorBox(id) {
  return h('p', { class: 'error', id, role: 'alert', 'data-test': id });
}

export function showError(box, e) {
  if (!box) return;
  box.textContent = e && e.message ? e.message : String(e);
}

export function clearError(box) {
  if (box) box.textContent = '';
}

// Runs `fn` as the action of `button`: the button is disabled and says
// "working…" meanwhile, `errorBox` is cleared first and shows the server's
// message if `fn` throws. Returns what `fn` returned, or undefined on error.
export async function act(button, errorBoxEl, fn) {
  const label = button.textContent;
  button.disabled = true;
  button.classList.add('working');
  button.setAttribute('aria-busy', 'true');
  button.textContent = 'working…';
  clearError(errorBoxEl);
  try {
    return await fn();
  } catch (e) {
    showError(errorBoxEl, e);
    if (!errorBoxEl) console.error(e);
    return undefined;
  } finally {
    button.disabled = false;
    button.classList.remove('working');
    button.removeAttribute('aria-busy');
    button.textContent = label;
  }
}

// A table: `columns` are [label, row => cell content]; `empty` is shown in
// one cell when there are no rows.
export function table(id, columns, rows, { empty = 'none yet', rowAttrs } = {}) {
  const head = h('tr', null, columns.map(([label]) => h('th', null, label)));
  const body = rows.length
    ? rows.map((r, i) => h('tr', rowAttrs ? rowAttrs(r, i) : null, columns.map(([, cell]) => h('td', null, cell(r, i)))))
    : [h('tr', { class: 'empty' }, h('td', { colspan: columns.length }, empty))];
  return h('table', { id, 'data-test': id }, h('thead', null, head), h('tbody', null, body));
}

// Tab links under `base` (a hash path); `active` is the current tab id.
export function tabs(base, list, active) {
  return h('nav', { class: 'tabs' }, list.map(([id, label]) =>
    h('a', { href: `${base}/${id}`, class: id === active ? 'active' : '', 'data-tab': id, id: `tab-${id}` }, label)));
}

export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', null, label), input, hint ? h('small', null, hint) : null);
}

export function badge(state) {
  const s = state || 'never run';
  return h('span', { class: `badge state-${s.replace(/\s+/g, '-')}` }, s);
}

export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h3', null, title), ...children);
}

// Formatting.
export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(Number(ms));
  return isNaN(d) ? String(ms) : d.toLocaleString();
}

export function fmtNum(n) {
  if (n === null || n === undefined) return '—';
  return Number(n).toLocaleString();
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = Number(n), u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${v.toFixed(u ? 1 : 0)} ${units[u]}`;
}

export function fmtJson(v) {
  if (v === null || v === undefined) return '—';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

// `x` may be a name or an object with one (the API nests objects).
export const nameOf = (x) => (x && typeof x === 'object') ? (x.name ?? x.id ?? '') : (x ?? '');

// A version as "v3", from a version object, a number or an id.
export function versionLabel(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'object') return v.number !== undefined ? `v${v.number}` : (v.id ?? '—');
  return typeof v === 'number' ? `v${v}` : String(v);
}
