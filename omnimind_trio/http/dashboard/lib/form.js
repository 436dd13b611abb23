// The task form (add and edit), derived from the OpenAPI document: one field per property
// of the TaskCreate schema, in its order, labelled with the property's name, with its
// description, bounds and default as help. A field added to the model shows here without
// an edit. The API checks the values; its 400 names the field (docs/api.md, "Errors"),
// and the message is shown next to that field.

import {openapi} from './api.js';
import {h} from './dom.js';

/** How a few fields are typed in, beyond what their schema says. */
const WIDGETS = {code: 'code', description: 'textarea'};

function resolve(schema, document) {
  if (schema?.$ref) {
    const name = schema.$ref.split('/').at(-1);
    const {$ref, ...rest} = schema;
    return {...resolve(document.components.schemas[name], document), ...rest};
  }
  if (schema?.allOf?.length === 1) {
    const {allOf, ...rest} = schema;
    return {...resolve(allOf[0], document), ...rest};
  }
  return schema;
}

/** One field: {name, kind, required, nullable, options, default, help}. */
function describe(name, raw, required, document) {
  let schema = resolve(raw, document);
  let nullable = false;
  if (schema.anyOf) {
    const options = schema.anyOf.filter((option) => option.type !== 'null');
    nullable = options.length < schema.anyOf.length;
    const {anyOf, ...rest} = schema;
    schema = {...resolve(options[0], document), ...rest};
  }
  let kind = WIDGETS[name] ?? 'text';
  if (schema.enum) kind = 'select';
  else if (schema.type === 'integer') kind = 'integer';
  else if (schema.type === 'number') kind = 'number';
  const bounds = [];
  if (schema.minimum !== undefined) bounds.push(`≥ ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) bounds.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined) bounds.push(`≤ ${schema.maximum}`);
  if (schema.maxLength !== undefined) bounds.push(`at most ${schema.maxLength} characters`);
  const help = [schema.description, bounds.join(', ')];
  if (schema.default !== undefined && schema.default !== null) help.push(`default ${schema.default}`);
  else if (!required) help.push('optional');
  return {
    name, kind, required, nullable, options: schema.enum ?? null, default: schema.default,
    help: help.filter(Boolean).join('; '),
  };
}

/** The fields of the schema ``name`` (TaskCreate) of the OpenAPI document. */
export async function taskFields(name = 'TaskCreate') {
  const document = await openapi();
  const schema = document.components.schemas[name];
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties).map(
    ([field, raw]) => describe(field, raw, required.has(field), document));
}

function control(field, id, value) {
  const common = {
    id, name: field.name, 'aria-describedby': `${id}-help ${id}-error`,
    required: field.required && field.kind !== 'textarea' ? true : null,
  };
  if (field.kind === 'select') {
    const select = h('select', common);
    if (!field.required) {
      const label = field.default !== undefined && field.default !== null
        ? `(default: ${field.default})` : '(none)';
      select.append(h('option', {value: ''}, label));
    } else if (value === undefined || value === null) {
      select.append(h('option', {value: ''}, 'choose…'));
    }
    for (const option of field.options) select.append(h('option', {value: option}, option));
    select.value = value ?? '';
    return select;
  }
  if (field.kind === 'code' || field.kind === 'textarea') {
    const area = h('textarea', {
      ...common, rows: field.kind === 'code' ? 12 : 3, spellcheck: 'false',
      class: field.kind === 'code' ? 'code' : null,
    });
    area.value = value ?? '';
    return area;
  }
  const numeric = field.kind === 'integer' || field.kind === 'number';
  const input = h('input', {
    ...common, type: 'text', autocomplete: 'off',
    inputmode: numeric ? (field.kind === 'integer' ? 'numeric' : 'decimal') : null,
  });
  input.value = value ?? '';
  return input;
}

/**
 * A form for ``fields`` filled with ``values``; ``readOnly`` names fields shown but not
 * editable. Returns {element, read(), showError(detail), clearErrors()}.
 */
export function taskForm(fields, {values = {}, readOnly = [], submitLabel, idPrefix = 'f'}) {
  const summary = h('div', {class: 'form-error', role: 'alert', hidden: true});
  const rows = new Map();
  const form = h('form', {class: 'task-form', novalidate: true}, summary);
  for (const field of fields) {
    const id = `${idPrefix}-${field.name}`;
    const input = control(field, id, values[field.name]);
    if (readOnly.includes(field.name)) input.disabled = true;
    const error = h('p', {class: 'field-error', id: `${id}-error`, hidden: true});
    const label = h('label', {for: id}, field.name);
    const row = h('div', {class: `field field-${field.kind}`},
      label, field.required ? h('span', {class: 'req', 'aria-hidden': 'true'}, ' *') : null,
      input, h('p', {class: 'help', id: `${id}-help`}, field.help), error);
    rows.set(field.name, {field, input, error, initial: input.value});
    form.append(row);
  }
  form.append(h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, submitLabel)));

  function parse(field, raw) {
    if (field.kind !== 'integer' && field.kind !== 'number') return raw;
    const text = raw.trim();
    const number = Number(text);
    // The API is strict ("4" is not an integer): send a number when it reads as one, else
    // the text as typed, and let the API say what is wrong with it.
    return text !== '' && Number.isFinite(number) ? number : raw;
  }

  return {
    element: form,
    /** The body: every filled field (``changedOnly``: the ones changed; cleared: null). */
    read({changedOnly = false} = {}) {
      const body = {};
      for (const [name, {field, input, initial}] of rows) {
        if (input.disabled) continue;
        const raw = input.value;
        if (changedOnly && raw === initial) continue;
        if (raw === '' && !(field.required && field.kind !== 'select')) {
          if (changedOnly && field.nullable) body[name] = null;
          continue;
        }
        body[name] = parse(field, raw);
      }
      return body;
    },
    showError(detail) {
      const name = fieldOf(detail, [...rows.keys()]);
      const row = name && rows.get(name);
      if (row && !row.input.disabled) {
        row.error.textContent = detail;
        row.error.hidden = false;
        row.input.setAttribute('aria-invalid', 'true');
        row.input.focus();
      } else {
        summary.textContent = detail;
        summary.hidden = false;
        summary.scrollIntoView({block: 'nearest'});
      }
    },
    clearErrors() {
      summary.hidden = true;
      summary.textContent = '';
      for (const {input, error} of rows.values()) {
        error.hidden = true;
        error.textContent = '';
        input.removeAttribute('aria-invalid');
      }
    },
  };
}

/**
 * The field an API error names, else null: "repeat_hours: Input should be ...",
 * "Missing required field: code", "Invalid priority: x", "task_id may hold only ...",
 * "Syntax error in code at line 1: ...", "Task already exists: x".
 */
export function fieldOf(detail, names) {
  const longestFirst = [...names].sort((a, b) => b.length - a.length);
  for (const name of longestFirst) {
    const pattern = new RegExp(`^(?:Missing required field: |Invalid )?${name}(?![A-Za-z0-9_])`, 'i');
    if (pattern.test(detail)) return name;
  }
  if (names.includes('code') && /\bcode\b|execute\(\)/i.test(detail)) return 'code';
  if (names.includes('task_id') && /^Task already exists/.test(detail)) return 'task_id';
  return null;
}
