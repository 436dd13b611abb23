// Building the page from data: elements and text nodes only, never HTML strings, so
// nothing a task holds (its name, its output) can become markup. Styles come from
// style.css through classes; the CSP refuses style attributes written as HTML.

const SVG = 'http://www.w3.org/2000/svg';

/**
 * An element: h('a', {href: '#/tasks', class: 'x'}, 'Tasks', otherNode).
 * Attribute values null, undefined and false are left out; true writes an empty one.
 * Keys starting with "on" add event listeners. A tag starting with "svg:" is an SVG element.
 */
export function h(tag, attributes, ...children) {
  const svg = tag.startsWith('svg:');
  const element = svg ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(attributes ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      element.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(element.dataset, value);
    } else {
      element.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(element, children);
  return element;
}

/** Add children: nodes, strings (as text), numbers; arrays are flattened, null skipped. */
export function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replace every child of ``parent``. */
export function fill(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** A <dl> of [term, description] pairs; pairs whose description is null are left out. */
export function definitions(pairs, attributes) {
  const list = h('dl', {class: 'facts', ...attributes});
  for (const [term, description] of pairs) {
    if (description === null || description === undefined) continue;
    list.append(h('div', null, h('dt', null, term), h('dd', null, description)));
  }
  return list;
}
