// Adding a task: a form with one field per property of the API's TaskCreate schema (read
// from /openapi.json), the API's own validation errors shown next to their field.

import {ApiError, post} from '../lib/api.js';
import {fill, h} from '../lib/dom.js';
import {taskFields} from '../lib/fields.js';
import {taskForm} from '../lib/form.js';
import {InputError} from '../lib/widgets.js';

const CODE_EXAMPLE = 'def execute():\n    print("hello")\n    return {"status": "done"}\n';
const PLACEHOLDERS = {code: CODE_EXAMPLE, cron: '30 2 * * *  or  @daily', after: 'backup, sync'};

export async function render(root, {signal, who: whoPromise, navigate}) {
  const who = await whoPromise;
  document.title = 'New task · OmniMind';
  const heading = h('h1', {tabindex: -1}, 'New task');
  if (who.role !== 'admin') {
    fill(root, heading, h('p', null, 'This credential can only read: it cannot add tasks.'));
    return;
  }
  const fields = await taskFields();
  if (signal.aborted) return;
  const form = taskForm(fields, {submitLabel: 'Add task', idPrefix: 'add'});
  for (const [name, example] of Object.entries(PLACEHOLDERS)) {
    form.element.querySelector(`#add-${name}`)?.setAttribute('placeholder', example);
  }
  form.element.addEventListener('submit', async (event) => {
    event.preventDefault();
    form.clearErrors();
    const button = form.element.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const answer = await post('/daemon/tasks/add', form.read());
      navigate(`#/task/${encodeURIComponent(answer.task_id)}`);
    } catch (error) {
      if (!(error instanceof ApiError || error instanceof InputError)) throw error;
      form.showError(error.detail);
    } finally {
      button.disabled = false;
    }
  });
  fill(root, heading,
    h('p', {class: 'muted'}, 'The code must define execute(); it runs in its own process, ',
      'at the moment its priority allows (CRITICAL: at once). Give at most one of repeat_hours, ',
      'repeat_minutes, cron and after to run it again, else it runs once; a cron task waits for ',
      'its first due time.'),
    form.element);
}
