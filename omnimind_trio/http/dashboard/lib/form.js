// The task form (add and edit): a widget per field the OpenAPI document describes
// (lib/fields.js, lib/widgets.js), labelled with the field's name. The API checks the
// values; its 400 names the field (docs/api.md, "Errors"), and the message is shown next
// to that field.

import {h} from './dom.js';
import {widget} from './widgets.js';

/** Every widget of ``widgets`` and of their groups, by the name an error gives it. */
function byName(widgets) {
  const named = new Map();
  for (const item of widgets) {
    named.set(item.field.name, item);
    for (const [name, part] of byName(item.parts)) named.set(name, part);
  }
  return named;
}

/**
 * A form for ``fields`` showing ``values`` (a task detail); ``readOnly`` names fields
 * shown but not editable. Returns {element, read(), showError(detail), clearErrors()}.
 */
export function taskForm(fields, {values = {}, readOnly = [], submitLabel, idPrefix = 'f'}) {
  const summary = h('div', {class: 'form-error', role: 'alert', hidden: true});
  const form = h('form', {class: 'task-form', novalidate: true}, summary);
  const widgets = fields.map((field) => widget(field, `${idPrefix}-${field.name}`, values[field.name]));
  for (const item of widgets) {
    if (readOnly.includes(item.field.name)) for (const input of item.inputs) input.disabled = true;
    form.append(item.element);
  }
  form.append(h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, submitLabel)));
  const named = byName(widgets);
  // What each widget's controls hold: a field is changed when its text is, and only a
  // changed one is read (an env value with a newline shows as two lines the form could
  // not read back; left alone, it is not sent).
  const controls = (item) => JSON.stringify([...item.element.querySelectorAll('input, textarea, select')]
    .map((control) => (control.type === 'checkbox' ? control.checked : control.value)));
  const initial = new Map(widgets.map((item) => [item, controls(item)]));

  return {
    element: form,
    /**
     * The body: every filled field (``changedOnly``: the ones changed, a cleared one as
     * null). Throws InputError for a field whose text the form cannot read.
     */
    read({changedOnly = false} = {}) {
      const body = {};
      for (const item of widgets) {
        if (readOnly.includes(item.field.name)) continue;
        if (changedOnly && controls(item) === initial.get(item)) continue;
        const value = item.value();
        if (value === undefined) {
          if (changedOnly && item.field.nullable) body[item.field.name] = null;
          continue;
        }
        body[item.field.name] = value;
      }
      return body;
    },
    showError(detail) {
      const item = named.get(fieldOf(detail, [...named.keys()]));
      const input = item?.inputs.find((control) => !control.disabled);
      if (input && !readOnly.includes(item.field.name)) {
        item.error.textContent = detail;
        item.error.hidden = false;
        for (const control of item.inputs) control.setAttribute('aria-invalid', 'true');
        input.focus();
      } else {
        summary.textContent = detail;
        summary.hidden = false;
        summary.scrollIntoView({block: 'nearest'});
      }
    },
    clearErrors() {
      summary.hidden = true;
      summary.textContent = '';
      for (const {inputs, error} of named.values()) {
        error.hidden = true;
        error.textContent = '';
        for (const control of inputs) control.removeAttribute('aria-invalid');
      }
    },
  };
}

const escaped = (name) => name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The field an API error names, else null: "repeat_hours: Input should be ...",
 * "notify.webhook: ...", "Missing required field: code", "Invalid priority: x", "task_id
 * may hold only ...", "cron and repeat_hours are mutually exclusive...", "Syntax error in
 * code at line 1: ...", "Task already exists: x". The API's messages begin with the field
 * they are about (docs/api.md, "Errors").
 */
export function fieldOf(detail, names) {
  const longestFirst = [...names].sort((a, b) => b.length - a.length);
  for (const name of longestFirst) {
    const pattern = new RegExp(`^(?:Missing required field: |Invalid )?${escaped(name)}(?![A-Za-z0-9_])`, 'i');
    if (pattern.test(detail)) return name;
  }
  if (names.includes('code') && /\bcode\b|execute\(\)/i.test(detail)) return 'code';
  if (names.includes('task_id') && /^Task already exists/.test(detail)) return 'task_id';
  return null;
}
