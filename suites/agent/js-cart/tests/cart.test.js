'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { createCatalog } = require('../lib/catalog.js');
const { applyDiscount } = require('../lib/discount.js');
const { createCart } = require('../lib/cart.js');

const catalog = () => createCatalog([{ id: 'tea', price: 450 }, { id: 'mug', price: 1299 }]);

test('catalog prices', () => {
  assert.equal(catalog().price('mug'), 1299);
  assert.throws(() => catalog().price('cake'));
});

test('discount codes', () => {
  assert.equal(applyDiscount(1999, 'TEN'), 1799);
  assert.equal(applyDiscount(300, 'FIVEOFF'), 0);
  assert.equal(applyDiscount(1000, null), 1000);
  assert.equal(applyDiscount(1000, undefined), 1000);
  assert.throws(() => applyDiscount(1000, 'FREE'));
});

test('lines keep the order of first add', () => {
  const cart = createCart(catalog());
  cart.add('mug');
  cart.add('tea', 2);
  cart.add('mug');
  assert.deepEqual(cart.lines(), [
    { id: 'mug', qty: 2, subtotal: 2598 },
    { id: 'tea', qty: 2, subtotal: 900 },
  ]);
});

test('bad adds and remove', () => {
  const cart = createCart(catalog());
  assert.throws(() => cart.add('tea', 0), RangeError);
  assert.throws(() => cart.add('tea', 1.5), RangeError);
  assert.throws(() => cart.add('cake'));
  cart.add('tea');
  cart.remove('tea');
  assert.deepEqual(cart.lines(), []);
});

test('total with a discount', () => {
  const cart = createCart(catalog());
  cart.add('tea', 3);
  assert.equal(cart.total(), 1350);
  assert.equal(cart.total('TEN'), 1215);
});
