// A refused lease renewal tells the reader the server's reason, not one message for every refusal.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from '../src/api.js';
import { leaseLostMessage } from '../src/lease.js';

test('a 409 names the rule the server gave', () => {
  const error = new ApiError(409, { detail: 'the task is closed' });
  assert.equal(
    leaseLostMessage(error),
    'Your hold on this case was not renewed: the task is closed. This read may not be accepted.',
  );
});

test('two different refusals read differently', () => {
  const full = leaseLostMessage(new ApiError(409, { detail: 'the lease ran out and the case has all the reads it needs' }));
  const other = leaseLostMessage(new ApiError(409, { detail: 'this case was not given to you; ask for the next case' }));
  assert.notEqual(full, other);
});

test('a refusal without a reason and a 404 still say what to do', () => {
  assert.match(leaseLostMessage(new ApiError(409, null)), /lapsed/);
  assert.match(leaseLostMessage(new ApiError(404, { detail: 'Not found.' })), /next case/);
});
