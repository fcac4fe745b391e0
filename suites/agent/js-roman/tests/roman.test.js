'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { toRoman } = require('../roman.js');

test('small numbers', () => {
  assert.equal(toRoman(1), 'I');
  assert.equal(toRoman(4), 'IV');
  assert.equal(toRoman(9), 'IX');
  assert.equal(toRoman(14), 'XIV');
});

test('larger numbers', () => {
  assert.equal(toRoman(40), 'XL');
  assert.equal(toRoman(90), 'XC');
  assert.equal(toRoman(400), 'CD');
  assert.equal(toRoman(1994), 'MCMXCIV');
});

test('the largest', () => {
  assert.equal(toRoman(3999), 'MMMCMXCIX');
});

test('out of range', () => {
  for (const bad of [0, -1, 4000, 2.5]) {
    assert.throws(() => toRoman(bad), RangeError);
  }
});
