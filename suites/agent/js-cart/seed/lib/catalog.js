'use strict';

function createCatalog(products) {
  throw new Error('not implemented');
}

module.exports = { createCatalog };
