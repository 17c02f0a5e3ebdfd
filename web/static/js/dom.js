// Small DOM helpers. Text always goes in as text nodes (never parsed as markup), so data from the
// network cannot inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, props) {
  if (!props) return;
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'testid') el.setAttribute('data-testid', v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Creates an HTML element: h('button', {class: 'x', onclick: fn, testid: 't'}, 'text'). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  apply(el, props);
  append(el, children);
  return el;
}

/** Creates an SVG element. */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, props);
  append(el, children);
  return el;
}

/** Replaces the children of el. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** Sets text only when it changed (keeps screen readers and layout quiet). */
export function setText(el, text) {
  const t = String(text ?? '');
  if (el.textContent !== t) el.textContent = t;
}

/** Sets or removes an attribute only when it changed. */
export function setAttr(el, name, value) {
  if (value === null || value === undefined || value === false) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
    return;
  }
  const v = value === true ? '' : String(value);
  if (el.getAttribute(name) !== v) el.setAttribute(name, v);
}

/**
 * Keyed list update: makes parent's children the elements for items, in order, reusing the
 * element of each key (so focus and state survive) and removing the others.
 */
export function reconcile(parent, items, key, create, update) {
  const old = new Map();
  for (const el of parent.children) if (el.dataset.key !== undefined) old.set(el.dataset.key, el);
  let cursor = parent.firstElementChild;
  for (const item of items) {
    const k = String(key(item));
    let el = old.get(k);
    if (el) old.delete(k);
    else {
      el = create(item);
      el.dataset.key = k;
    }
    update(el, item);
    if (el === cursor) cursor = cursor.nextElementSibling;
    else parent.insertBefore(el, cursor);
  }
  for (const el of old.values()) el.remove();
}

/** Coalesces calls of fn into one per animation frame. */
export function scheduler(fn) {
  let pending = false;
  const raf = globalThis.requestAnimationFrame || ((cb) => setTimeout(cb, 16));
  return () => {
    if (pending) return;
    pending = true;
    raf(() => {
      pending = false;
      fn();
    });
  };
}
