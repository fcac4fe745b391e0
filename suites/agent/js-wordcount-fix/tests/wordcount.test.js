'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { countWords, topWords } = require('../wordcount.js');

test('case and punctuation are ignored', () => {
  assert.deepEqual(countWords('Go, go GO!'), { go: 3 });
});

test('apostrophes inside words and extra spaces', () => {
  assert.deepEqual(countWords("  don't  stop\nDon't "), { "don't": 2, stop: 1 });
});

test('top words by count then alphabet', () => {
  assert.deepEqual(topWords('b a c b a d b', 2), [['b', 3], ['a', 2]]);
  assert.deepEqual(topWords('y x z', 2), [['x', 1], ['y', 1]]);
});

test('empty text', () => {
  assert.deepEqual(countWords(''), {});
  assert.deepEqual(topWords('', 3), []);
});
