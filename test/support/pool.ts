// A bounded worker pool for tests that run many independent trials or connections.

/**
 * Runs `fn` over `items` with at most `width` calls in flight; each worker takes the next item
 * as soon as its last one ends (no batch waits for its slowest). Results keep the items' order;
 * the first rejection rejects the whole (the other workers finish their current item and stop).
 */
export async function mapPool<T, R>(items: readonly T[], width: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i] as T, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return out;
}
