// Unit tests of the prefetch order and cache budget (node --test).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cacheBudgetBytes, interleave, outwardOrder } from '../src/sliceOrder.js';

test('prefetch works outward from the current slice, two ahead for each one behind', () => {
  assert.deepEqual(outwardOrder(10, 100, { limit: 6 }), [11, 12, 9, 13, 14, 8]);
  assert.deepEqual(outwardOrder(10, 100, { direction: -1, limit: 6 }), [9, 8, 11, 7, 6, 12]);
});

test('prefetch covers every other slice once, also from the ends of the stack', () => {
  for (const center of [0, 3, 7]) {
    const order = outwardOrder(center, 8);
    assert.equal(order.length, 7);
    assert.deepEqual([...order, center].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
  }
  assert.deepEqual(outwardOrder(7, 8, { direction: 1 }), [6, 5, 4, 3, 2, 1, 0]);
});

test('the cache budget is a quarter of device memory within 256 MiB and 1.5 GiB', () => {
  assert.equal(cacheBudgetBytes(4), 1024 ** 3);
  assert.equal(cacheBudgetBytes(0.5), 256 * 1024 ** 2);
  assert.equal(cacheBudgetBytes(8), 1.5 * 1024 ** 3);
  assert.equal(cacheBudgetBytes(undefined), 1024 ** 3);
});

test('two stacks prefetch in turn, nearest slices of each first, the longer one finishing alone', () => {
  assert.deepEqual(interleave([['b1', 'b2', 'b3'], ['f1']]), ['b1', 'f1', 'b2', 'b3']);
  assert.deepEqual(interleave([[], ['f1', 'f2']]), ['f1', 'f2']);
  assert.deepEqual(interleave([]), []);
});
