def total_value_cents(stock):
    raise NotImplementedError


def format_report(stock):
    raise NotImplementedError
