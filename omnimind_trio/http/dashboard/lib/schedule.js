// Timing helpers: coalesced refetches, so a burst of events (10,000 tasks changing) costs
// one request per interval, never one per event.

/**
 * A function that asks for ``work()`` to run: at most once per ``intervalMs``, never two
 * at a time (a request made while it runs runs it once more afterwards). Stops for good
 * when ``signal`` aborts. Errors go to ``onError``.
 */
export function coalesced(work, {intervalMs = 250, signal, onError = console.error} = {}) {
  let timer = null;
  let running = false;
  let again = false;
  let last = -Infinity;

  async function fire() {
    timer = null;
    if (signal?.aborted) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    last = performance.now();
    try {
      await work();
    } catch (error) {
      if (!signal?.aborted && error?.name !== 'AbortError') onError(error);
    } finally {
      running = false;
      if (again) {
        again = false;
        request();
      }
    }
  }

  function request() {
    if (timer !== null || signal?.aborted) return;
    if (running) {
      again = true;
      return;
    }
    timer = setTimeout(fire, Math.max(0, last + intervalMs - performance.now()));
  }

  /** Run it now (the page's first load): requests meanwhile wait for it, as above. */
  request.now = async () => {
    clearTimeout(timer);
    timer = null;
    running = true;
    last = performance.now();
    try {
      await work();
    } finally {
      running = false;
      if (again) {
        again = false;
        request();
      }
    }
  };

  signal?.addEventListener('abort', () => clearTimeout(timer));
  return request;
}

/** ``fn`` called ``waitMs`` after the last call. */
export function debounced(fn, waitMs) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), waitMs);
  };
}

/** ``setInterval`` that ends when ``signal`` aborts. */
export function every(ms, fn, signal) {
  const id = setInterval(fn, ms);
  signal.addEventListener('abort', () => clearInterval(id));
}
