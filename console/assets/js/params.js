// A key/value editor for job parameters (`ctx.param(..)` in the job).

import { h } from './dom.js';

export function paramsEditor(id, initial) {
  const rows = h('div', { class: 'param-rows' });
  const add = h('button', { type: 'button', class: 'small', id: `${id}-add` }, 'Add parameter');
  const root = h('div', { class: 'params', id, 'data-test': id }, rows, add);

  function addRow(key = '', value = '') {
    const k = h('input', { class: 'param-key', placeholder: 'name', value: key });
    const v = h('input', { class: 'param-value', placeholder: 'value', value: value });
    const remove = h('button', { type: 'button', class: 'small link', title: 'remove', 'data-test': 'param-remove' }, '✕');
    const row = h('div', { class: 'param-row' }, k, h('span', null, '='), v, remove);
    remove.addEventListener('click', () => row.remove());
    rows.append(row);
    return row;
  }
  add.addEventListener('click', () => addRow().querySelector('input').focus());
  for (const [k, v] of Object.entries(initial || {})) addRow(k, v);

  return {
    el: root,
    set(values) {
      rows.replaceChildren();
      for (const [k, v] of Object.entries(values || {})) addRow(k, v);
    },
    // The parameters as an object; a value without a name is an error.
    value() {
      const out = {};
      for (const row of rows.querySelectorAll('.param-row')) {
        const k = row.querySelector('.param-key').value.trim();
        const v = row.querySelector('.param-value').value;
        if (!k && !v) continue;
        if (!k) throw new Error(`a parameter with value "${v}" has no name`);
        out[k] = v;
      }
      return out;
    },
  };
}
