"""Helpers the tests share: no tests in here, and nothing pytest collects.

- ``cases``: the provider-case registry (:data:`~tests.support.cases.CASES`), the one list
  of providers the contract tests are parametrised over (the ``case`` fixture).
- ``recordings``: the recorded responses in ``tests/samples/<provider>/``.
- ``served``, ``cli_served``: a fake served by ``python -m wemasy_async.testing serve`` in
  another process (for the command's tests, which run their own event loop).
- ``threaded``: a fake served from an event loop in a thread (for the blocking client).
- ``loopback``: a forward proxy and a TLS front on 127.0.0.1.
- ``clock``: a clock the test advances by hand.
- ``soak``, ``redis_worker``: programs the tests run (``python -m tests.support.soak``).
"""
