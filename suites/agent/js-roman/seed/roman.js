'use strict';

function toRoman(n) {
  throw new Error('not implemented');
}

module.exports = { toRoman };
