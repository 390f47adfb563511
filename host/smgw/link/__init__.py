"""The host's end of the firmware link: the shared protocol core (``smgwfw.link``) driven from
asyncio, over any port pyserial opens."""
