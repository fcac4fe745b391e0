def parity(n: int) -> str:
    raise NotImplementedError
