"""The gateway's self-test (docs/self-test.md).

* :mod:`.checks` -- the :class:`Check` result and the checks of the gateway's state (firmware
  hashes, database, calibration-log chain, time, link, disk);
* :mod:`.kat` -- known-answer tests of SHA-2, AES, AES-CMAC, ECDSA and the RNG health tests;
* :mod:`.software` -- the signed manifest of the host software (seal / verify);
* :mod:`.runner` -- :class:`SelfTest`: triggers, schedule, rate limit, log events, and the
  operating-state causes its failures raise.
"""

from smgw.selftest.checks import Check
from smgw.selftest.runner import Busy, RateLimited, Report, SelfTest

__all__ = ["Busy", "Check", "RateLimited", "Report", "SelfTest"]
