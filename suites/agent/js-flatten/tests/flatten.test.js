'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { flatten } = require('../flatten.js');

test('nested values become dotted keys', () => {
  assert.deepEqual(flatten({ a: 1, b: { c: 2, d: { e: null } }, f: [1, 2] }),
    { a: 1, 'b.c': 2, 'b.d.e': null, f: [1, 2] });
});

test('empty objects vanish', () => {
  assert.deepEqual(flatten({}), {});
  assert.deepEqual(flatten({ x: {}, y: { z: {} }, w: 0 }), { w: 0 });
});

test('input untouched', () => {
  const input = { p: { q: 1 } };
  flatten(input);
  assert.deepEqual(input, { p: { q: 1 } });
});
