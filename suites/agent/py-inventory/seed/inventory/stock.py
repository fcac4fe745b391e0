class Stock:
    def add(self, item, quantity):
        raise NotImplementedError

    def remove(self, sku, quantity):
        raise NotImplementedError

    def quantity(self, sku):
        raise NotImplementedError

    def items(self):
        raise NotImplementedError
