'use strict';

function countWords(text) {
  const counts = {};
  for (const word of text.split(' ')) {
    counts[word] = (counts[word] || 0) + 1;
  }
  return counts;
}

function topWords(text, n) {
  const pairs = Object.entries(countWords(text));
  pairs.sort((a, b) => a[1] - b[1]);
  return pairs.slice(0, n);
}

module.exports = { countWords, topWords };
