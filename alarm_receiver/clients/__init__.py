"""The client register (brukarregister): who is behind each device, how to get in, whom to call, and who may see
what (docs/clients.md). Plain domain modules; the routes are ``alarm_receiver/api/clients.py``.

- ``models``: the tables (clients, their call lists, device links with history, patrol areas, the shift roster,
  the last known state of digital locks);
- ``repository``: reading and writing records, search, the client of an alarm;
- ``access``: the need-to-know rules and the supervision-log entry of every view;
- ``csv_io``: import and export in the documented column set;
- ``routing``: areas, the shift roster and the patrols proposed for an alarm;
- ``grants``: short-lived, signed unlock grants for digital locks.
"""
