'use strict';

function createCart(catalog) {
  throw new Error('not implemented');
}

module.exports = { createCart };
