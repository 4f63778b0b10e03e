"""Shared by the parity scripts: a pass/fail tally that prints one line per check."""


class Report:
    """report.line(name, ok, text) prints "ok   name text" or "FAIL name text" and counts it;
    report.summary() prints the totals and returns the exit status (1 if anything failed)."""

    def __init__(self, label, width=22):
        self.label = label
        self.width = width
        self.passed = 0
        self.failed = 0

    def line(self, name, ok, text):
        print(f"{'ok  ' if ok else 'FAIL'} {name:{self.width}s} {text}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def fail(self, name, why):
        self.line(name, False, why)

    def tensor(self, tensors, name, shape=None):
        """tensors[name] if it is there with that shape; else a failed line and None."""
        if name not in tensors:
            self.line(name, False, "missing")
            return None
        a = tensors[name]
        if shape is not None and tuple(a.shape) != tuple(shape):
            self.line(name, False, f"shape {tuple(a.shape)}, expected {tuple(shape)}")
            return None
        return a

    def summary(self):
        print(f"{self.label}: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0
