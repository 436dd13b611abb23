// The task form's controls, one per kind of field (lib/fields.js): a labelled control with
// its help and its error, that shows a value of the API's (the task detail's) and reads
// back the JSON the API takes. Each is {element, inputs, error, value(), parts}:
// ``value()`` is undefined for a field left empty and throws InputError for text that
// cannot become JSON of the right shape (a mapping line without "="); ``inputs[0]`` takes
// the focus when an error names the field; ``parts`` are a group's own widgets.

import {h} from './dom.js';

/** Input the form itself refuses (before the API sees it); ``detail`` names the field. */
export class InputError extends Error {
  constructor(detail) {
    super(detail);
    this.name = 'InputError';
    this.detail = detail;
  }
}

const ZONES = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];

const described = (id) => `${id}-help ${id}-error`;

function errorOf(id) {
  return h('p', {class: 'field-error', id: `${id}-error`, hidden: true});
}

function helpOf(id, text) {
  return h('p', {class: 'help', id: `${id}-help`}, text);
}

/** A row: label, control, help, error. */
function row(field, id, control, {extra = null, help = field.help} = {}) {
  const error = errorOf(id);
  const element = h('div', {class: `field field-${field.kind}`},
    h('label', {for: id}, field.label),
    field.required ? h('span', {class: 'req', 'aria-hidden': 'true'}, ' *') : null,
    control, extra, helpOf(id, help), error);
  return {element, error};
}

function text(field, id, value) {
  const numeric = field.kind === 'integer' || field.kind === 'number';
  const input = h('input', {
    id, name: field.name, type: 'text', autocomplete: 'off', 'aria-describedby': described(id),
    required: field.required ? true : null, list: field.kind === 'timezone' ? `${id}-zones` : null,
    inputmode: numeric ? (field.kind === 'integer' ? 'numeric' : 'decimal') : null,
  });
  input.value = value === null || value === undefined ? '' : String(value);
  const zones = field.kind === 'timezone'
    ? h('datalist', {id: `${id}-zones`}, ZONES.map((zone) => h('option', {value: zone}))) : null;
  return {
    ...row(field, id, input, {extra: zones}), inputs: [input],
    value() {
      const raw = input.value;
      if (raw === '') return field.required ? '' : undefined;
      if (!numeric) return raw;
      const number = Number(raw.trim());
      // The API is strict ("4" is not an integer): send a number when it reads as one, else
      // the text as typed, and let the API say what is wrong with it.
      return raw.trim() !== '' && Number.isFinite(number) ? number : raw;
    },
  };
}

function select(field, id, value) {
  const control = h('select', {
    id, name: field.name, 'aria-describedby': described(id), required: field.required ? true : null,
  });
  if (!field.required) {
    const label = field.default !== undefined && field.default !== null
      ? `(default: ${field.default})` : '(none)';
    control.append(h('option', {value: ''}, label));
  } else if (value === undefined || value === null) {
    control.append(h('option', {value: ''}, 'choose…'));
  }
  for (const option of field.options) control.append(h('option', {value: option}, option));
  control.value = value ?? '';
  return {...row(field, id, control), inputs: [control], value: () => control.value || undefined};
}

function area(field, id, value, attributes = {}) {
  const control = h('textarea', {
    id, name: field.name, 'aria-describedby': described(id), spellcheck: 'false',
    rows: field.kind === 'code' ? 12 : 3, class: field.kind === 'code' ? 'code' : null, ...attributes,
  });
  control.value = value ?? '';
  return control;
}

function longText(field, id, value) {
  const control = area(field, id, value);
  return {
    ...row(field, id, control), inputs: [control],
    value: () => (control.value === '' && !field.required ? undefined : control.value),
  };
}

function list(field, id, value) {
  const input = h('input', {
    id, name: field.name, type: 'text', autocomplete: 'off', 'aria-describedby': described(id),
    spellcheck: 'false',
  });
  input.value = Array.isArray(value) ? value.join(', ') : '';
  return {
    ...row(field, id, input), inputs: [input],
    value() {
      const items = input.value.split(/[\s,]+/).filter(Boolean);
      return items.length ? items : undefined;
    },
  };
}

/**
 * NAME=VALUE lines as an object, both as typed (the API says what is wrong with a name);
 * blank lines are skipped; InputError naming the field for a line without a name and "=".
 */
export function parseMapping(name, textValue) {
  const mapping = {};
  const lines = textValue.split('\n');
  for (const [index, rawLine] of lines.entries()) {
    const line = rawLine.replace(/\r$/, '');
    if (line.trim() === '') continue;
    const equals = line.indexOf('=');
    const key = equals > 0 ? line.slice(0, equals) : '';
    if (!key.trim()) throw new InputError(`${name}: line ${index + 1} is not NAME=VALUE`);
    if (Object.hasOwn(mapping, key)) throw new InputError(`${name}: ${key} is given twice`);
    mapping[key] = line.slice(equals + 1);
  }
  return Object.keys(mapping).length ? mapping : undefined;
}

function mapping(field, id, value) {
  if (field.writeOnly) return secrets(field, id, value);
  const lines = value && typeof value === 'object'
    ? Object.entries(value).map(([key, item]) => `${key}=${item}`).join('\n') : '';
  const control = area(field, id, lines, {class: 'code', placeholder: 'NAME=value'});
  return {...row(field, id, control), inputs: [control], value: () => parseMapping(field.name, control.value)};
}

/**
 * Write-only NAME=VALUE lines: never filled in (the API shows only the names, ``value``).
 * Left empty, nothing is sent: the current ones are kept; lines replace all of them; a
 * checkbox removes them all.
 */
function secrets(field, id, names) {
  const current = Array.isArray(names) ? names : [];
  const control = area(field, id, '', {
    class: 'code secret', placeholder: 'NAME=value', autocomplete: 'off',
  });
  const remove = current.length ? h('input', {type: 'checkbox', id: `${id}-remove`}) : null;
  const extra = remove ? h('div', {class: 'check'}, remove,
    h('label', {for: `${id}-remove`, class: 'plain-label'}, `remove them all (${current.join(', ')})`)) : null;
  const help = current.length
    ? `${field.help}. Set now: ${current.join(', ')}; left empty, they are kept; lines typed here replace them all.`
    : field.help;
  remove?.addEventListener('change', () => {
    control.disabled = remove.checked;
  });
  return {
    ...row(field, id, control, {extra, help}), inputs: [control],
    value: () => (remove?.checked ? null : parseMapping(field.name, control.value)),
  };
}

function boolean(field, id, value) {
  const input = h('input', {type: 'checkbox', id, name: field.name, 'aria-describedby': described(id)});
  input.checked = Boolean(value ?? field.default);
  const error = errorOf(id);
  const element = h('div', {class: 'field field-boolean'},
    h('div', {class: 'check'}, input, h('label', {for: id}, field.label)), helpOf(id, field.help), error);
  return {element, error, inputs: [input], value: () => input.checked};
}

function choices(field, id, value) {
  const chosen = new Set(value ?? field.default ?? []);
  const boxes = field.options.map((option) => {
    const box = h('input', {type: 'checkbox', id: `${id}-${option}`, name: field.name, value: option});
    box.checked = chosen.has(option);
    return box;
  });
  const error = errorOf(id);
  const element = h('fieldset', {class: 'field field-choices', 'aria-describedby': described(id)},
    h('legend', null, field.label),
    h('div', {class: 'checks'}, boxes.map((box) =>
      h('span', {class: 'check'}, box, h('label', {for: box.id}, box.value)))),
    helpOf(id, field.help), error);
  return {
    element, error, inputs: boxes,
    value: () => boxes.filter((box) => box.checked).map((box) => box.value),
  };
}

/**
 * A group of fields (an object with properties). A nullable one is off (null) until its
 * checkbox, labelled with its name, is ticked; then its fields show and are sent together.
 */
function group(field, id, value) {
  const parts = field.fields.map((part) => widget(part, `${id}-${part.label}`, value?.[part.label]));
  const body = h('div', {class: 'group-fields'}, parts.map((part) => part.element));
  const error = errorOf(id);
  let toggle = null;
  let legend;
  if (field.nullable) {
    toggle = h('input', {type: 'checkbox', id, name: field.name, 'aria-describedby': described(id),
      'aria-controls': `${id}-fields`});
    toggle.checked = value !== null && value !== undefined;
    body.id = `${id}-fields`;
    body.hidden = !toggle.checked;
    toggle.addEventListener('change', () => {
      body.hidden = !toggle.checked;
    });
    legend = h('legend', null, h('span', {class: 'check'}, toggle, h('label', {for: id}, field.label)));
  } else {
    legend = h('legend', null, field.label);
  }
  const element = h('fieldset', {class: 'field field-group'}, legend, helpOf(id, field.help), error, body);
  return {
    element, error, parts, inputs: toggle ? [toggle] : parts[0]?.inputs ?? [],
    value() {
      if (toggle && !toggle.checked) return undefined;
      const object = {};
      for (const part of parts) {
        const item = part.value();
        if (item !== undefined) object[part.field.label] = item;
      }
      return object;
    },
  };
}

const KINDS = {
  text, integer: text, number: text, timezone: text, select, code: longText, textarea: longText,
  list, mapping, boolean, choices, group,
};

/** The widget of ``field``, showing ``value`` (the task detail's), with the id ``id``. */
export function widget(field, id, value) {
  const made = (KINDS[field.kind] ?? text)(field, id, value);
  return {parts: [], ...made, field};
}
