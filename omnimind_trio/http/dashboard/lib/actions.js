// Buttons that act (Run now, Pause, Delete...): each calls the API, is disabled while its
// request is in flight, and reports the answer in the page's status line. A viewer
// credential gets none of them (the server would refuse them anyway: 403).

import {h} from './dom.js';

/** A status line for action results (polite) and errors (assertive). */
export function statusLine() {
  const element = h('p', {class: 'status-line', role: 'status', 'aria-live': 'polite'});
  return {
    element,
    ok(text) {
      element.className = 'status-line ok';
      element.textContent = text;
    },
    error(text) {
      element.className = 'status-line fail';
      element.textContent = text;
    },
  };
}

/**
 * A <button> named ``label`` that runs ``act()``; its result's ``message`` (or the error's
 * ``detail``) goes to ``status``, then ``after()`` runs.
 */
export function actionButton(label, act, {status, after, className = ''} = {}) {
  const button = h('button', {type: 'button', class: `action ${className}`.trim()}, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const result = await act();
      if (result === false) return; // declined (a confirmation said no)
      if (result?.message) status?.ok(result.message);
      await after?.(result);
    } catch (error) {
      status?.error(error.detail ?? String(error));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}
