// What the task form asks for, read from the OpenAPI document: one description per property
// of the TaskCreate schema, in its order, with its kind (from its JSON type), bounds,
// default and description as help. An object with properties of its own (notify) is a
// group of such fields. A field added to the model shows in the form without an edit here.

import {openapi} from './api.js';

/** How a few fields are typed in, beyond what their schema says. */
const WIDGETS = {code: 'code', description: 'textarea', timezone: 'timezone'};

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

/** The schema without its ``null`` option, and whether null is allowed. */
function unwrap(raw, document) {
  const schema = resolve(raw, document);
  if (!schema.anyOf) return {schema, nullable: false};
  const options = schema.anyOf.filter((option) => option.type !== 'null');
  const {anyOf, ...rest} = schema;
  return {schema: {...resolve(options[0], document), ...rest}, nullable: options.length < anyOf.length};
}

function kindOf(name, schema) {
  if (WIDGETS[name]) return WIDGETS[name];
  if (schema.enum) return 'select';
  if (schema.type === 'array') return schema.items?.enum ? 'choices' : 'list';
  if (schema.type === 'object') return schema.properties ? 'group' : 'mapping';
  return {integer: 'integer', number: 'number', boolean: 'boolean'}[schema.type] ?? 'text';
}

const shown = (value) => (Array.isArray(value) ? value.join(', ') : String(value));

/**
 * One field: {name, label, kind, required, nullable, writeOnly, options, default, help,
 * fields}. ``name`` is the path an API error names (``notify.webhook``), ``label`` the
 * property's own name; ``fields`` are a group's.
 */
function describe(name, raw, required, document, label = name) {
  const {schema: unwrapped, nullable} = unwrap(raw, document);
  const schema = unwrapped.type === 'array' ? {...unwrapped, items: resolve(unwrapped.items, document)} : unwrapped;
  const kind = kindOf(name, schema);
  const bounds = [];
  if (schema.minimum !== undefined) bounds.push(`≥ ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) bounds.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined) bounds.push(`≤ ${schema.maximum}`);
  if (schema.maxLength !== undefined) bounds.push(`at most ${schema.maxLength} characters`);
  if (kind === 'list' && schema.maxItems !== undefined) bounds.push(`at most ${schema.maxItems}`);
  const help = [schema.description];
  if (kind === 'list') help.push('comma-separated');
  if (kind === 'mapping') help.push('one NAME=VALUE a line');
  help.push(bounds.join(', '));
  const empty = schema.default === undefined || schema.default === null
    || (Array.isArray(schema.default) && schema.default.length === 0);
  if (!empty && kind !== 'boolean') help.push(`default ${shown(schema.default)}`);
  else if (!required && kind !== 'boolean') help.push('optional');
  const group = schema.properties ? new Set(schema.required ?? []) : null;
  return {
    name, label, kind, required, nullable, writeOnly: Boolean(schema.writeOnly),
    options: schema.enum ?? schema.items?.enum ?? null, default: schema.default,
    help: help.filter(Boolean).join('; '),
    fields: group && Object.entries(schema.properties).map(([child, childRaw]) =>
      describe(`${name}.${child}`, childRaw, group.has(child), document, child)),
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
