'use strict';

function flatten(obj) {
  throw new Error('not implemented');
}

module.exports = { flatten };
