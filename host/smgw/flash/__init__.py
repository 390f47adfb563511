"""Putting the firmware on a board.

``smgw flash`` (module :mod:`smgw.flash.deploy`) installs the firmware as files over the REPL with
mpremote: :mod:`build` compiles ``firmware/smgwfw`` to ``.mpy`` for the board's architecture,
:mod:`plan` works out what has to change on the device (only files whose SHA-256 differs are
copied), :mod:`deploy` carries the plan out and checks the firmware's link HELLO afterwards.
``smgw firmware`` builds a complete MicroPython image with the firmware frozen in.
docs/flashing.md describes the bench flow.
"""

from smgw.flash.build import BuildError, BuiltFile, board_facts, compile_firmware
from smgw.flash.plan import Plan, make_plan

__all__ = ["BuildError", "BuiltFile", "Plan", "board_facts", "compile_firmware", "make_plan"]
