"""A simulated mainframe core over the ``fixed`` protocol, for the demo, tests and benchmarks.

It holds its own accounts and speaks EBCDIC (code page 037) records with packed-decimal
amounts (the layouts in ``core_layouts.yaml``), one request at a time per connection, each
record behind a 2-byte big-endian length. The seed accounts, all in CNY:

=================  ============  ===============
account            holder        balance
=================  ============  ===============
6217000000000001   ZHANG WEI     50,000.00
6217000000000002   LI NA          1,250.00
6217000000000003   WANG FANG          0.00
6217000000000004   CHEN JIE     12,345,678.90
=================  ============  ===============

Operations, by ``txn_code``: ``BINQ`` balance inquiry, ``DEBT`` debit, ``CRDT`` credit and
``XFER`` transfer (``amount`` plus ``fee`` off ``account``, ``amount`` onto ``to_account``;
each with a reference unique across all three), ``STAT`` status inquiry by reference (did it
happen?) and ``REVS`` reversal by reference (idempotent; a reversal of a reference never seen
is remembered, so the original arriving late is refused as a duplicate). Result codes are in
``RESULTS``.

Faults make it misbehave on purpose, at start or at run time (``set_faults``): ``slow_ms``
delays each answer, ``drop`` applies the request but never answers (the in-doubt case),
``garbage`` applies it and answers bytes that do not decode, ``down`` closes every connection
and refuses new ones.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from importlib import resources

import yaml

from channelhub.connectors.fixed.codec import Layout, Value, decode, encode, load_layouts
from channelhub.connectors.fixed.errors import FixedDecodeError, FixedFrameError
from channelhub.connectors.fixed.framing import Framing
from channelhub.connectors.simulators.base import CommonFaults, SimulatedServer, serve_forever
from channelhub.kit.errors import ChannelhubError
from channelhub.kit.logging import get_logger
from channelhub.kit.money import Money

__all__ = [
    "CORE_FRAMING",
    "CORE_LAYOUTS",
    "CORE_REQUEST",
    "CORE_RESPONSE",
    "RESULTS",
    "AccountsFileError",
    "CoreAccount",
    "CoreEntry",
    "CoreSimulator",
    "Faults",
    "load_accounts",
    "seed_accounts",
    "serve_forever",
]

log = get_logger(__name__)

#: The core's record layouts, by name.
CORE_LAYOUTS: dict[str, Layout] = load_layouts(
    resources.files(__package__).joinpath("core_layouts.yaml").read_text(encoding="utf-8")
)
CORE_REQUEST = CORE_LAYOUTS["core.request"]
CORE_RESPONSE = CORE_LAYOUTS["core.response"]
CORE_FRAMING = Framing(prefix_bytes=2, max_record_bytes=1024)

#: The core's result codes and what they mean.
RESULTS: dict[str, str] = {
    "0000": "ok",
    "0012": "unknown transaction code",
    "0013": "invalid amount or currency",
    "0014": "no such account",
    "0025": "no such reference",
    "0030": "format error (the request does not decode, or lacks a reference)",
    "0051": "insufficient funds",
    "0094": "duplicate reference",
    "0096": "system error",
}

#: A connection may stay silent this long between requests, and take this long over one.
IDLE_SECONDS = 300.0
READ_SECONDS = 10.0


@dataclass(slots=True)
class CoreAccount:
    """An account the core holds; ``balance`` in minor units."""

    number: str
    holder: str
    currency: str
    balance: int


@dataclass(slots=True)
class CoreEntry:
    """What the core remembers of a reference: a debit or credit, and what became of it."""

    reference: str
    txn_code: str
    account: str
    currency: str
    amount: int
    #: ``A`` applied, ``R`` reversed, ``D`` declined.
    status: str
    result: str
    journal_no: int = 0
    #: XFER: the account credited, and the fee taken with the amount.
    to_account: str = ""
    fee: int = 0


@dataclass(frozen=True, slots=True)
class Faults(CommonFaults):
    """How the core misbehaves on purpose."""

    #: Apply requests with these transaction codes but never answer them (``drop`` for
    #: some: a transfer's answer lost while status inquiries are answered).
    drop_codes: frozenset[str] = frozenset()
    #: Ignore requests with these transaction codes entirely: neither applied nor answered,
    #: as if lost on the way to the core.
    lose_codes: frozenset[str] = frozenset()


class AccountsFileError(ValueError):
    """An accounts file for the core is not a list of valid accounts; the message says where."""


def load_accounts(text: str) -> dict[str, CoreAccount]:
    """Read the core's accounts from YAML: a list of ``{number, holder, currency, balance}``,
    the balance a decimal string (``"50000.00"``).

    Raises:
        AccountsFileError: not YAML, not a list, or an entry that is not a valid account.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise AccountsFileError(f"not YAML: {getattr(error, 'problem', None) or error}") from None
    if not isinstance(document, list) or not document:
        raise AccountsFileError("a non-empty list of accounts {number, holder, currency, balance}")
    accounts: dict[str, CoreAccount] = {}
    for index, entry in enumerate(document):
        where = f"account {index + 1}"
        if not isinstance(entry, dict) or set(entry) != {"number", "holder", "currency", "balance"}:
            raise AccountsFileError(f"{where}: has exactly number, holder, currency and balance")
        number, holder, currency = entry["number"], entry["holder"], entry["currency"]
        if not isinstance(number, str) or not number.isdigit() or len(number) > 20:
            raise AccountsFileError(f"{where}: number is up to 20 digits, quoted")
        if not isinstance(holder, str) or not holder or len(holder) > 40:
            raise AccountsFileError(f"{where}: holder is a name of up to 40 characters")
        try:
            balance = Money.parse(entry["balance"], currency)
        except ChannelhubError as error:
            raise AccountsFileError(f"{where}: {error.message}") from None
        if number in accounts:
            raise AccountsFileError(f"{where}: number {number} appears twice")
        accounts[number] = CoreAccount(number, holder.upper(), balance.currency, balance.minor)
    return accounts


def seed_accounts() -> dict[str, CoreAccount]:
    """Return the core's deterministic seed accounts, by number."""
    seed = (
        CoreAccount("6217000000000001", "ZHANG WEI", "CNY", 5_000_000),
        CoreAccount("6217000000000002", "LI NA", "CNY", 125_000),
        CoreAccount("6217000000000003", "WANG FANG", "CNY", 0),
        CoreAccount("6217000000000004", "CHEN JIE", "CNY", 1_234_567_890),
    )
    return {account.number: account for account in seed}


@dataclass(slots=True)
class _Book:
    """The core's accounts and its journal of references (pure: no I/O)."""

    accounts: dict[str, CoreAccount]
    entries: dict[str, CoreEntry] = field(default_factory=dict)
    journal_no: int = 0

    def process(self, request: dict[str, Value]) -> dict[str, Value]:
        code = str(request["txn_code"])
        handler = {
            "BINQ": self._inquire,
            "DEBT": self._debit,
            "CRDT": self._credit,
            "XFER": self._transfer,
            "STAT": self._status,
            "REVS": self._reverse,
        }.get(code)
        if handler is None:
            return {"txn_code": code, "result": "0012"}
        return {"txn_code": code, **handler(request)}

    def _balances(self, number: str) -> dict[str, Value]:
        account = self.accounts.get(number)
        if account is None:
            return {}
        return {
            "account": number,
            "currency": account.currency,
            "ledger_balance": account.balance,
            "available_balance": account.balance,
        }

    def _inquire(self, request: dict[str, Value]) -> dict[str, Value]:
        number = str(request["account"])
        if number not in self.accounts:
            return {"result": "0014", "account": number}
        return {"result": "0000", **self._balances(number)}

    def _debit(self, request: dict[str, Value]) -> dict[str, Value]:
        return self._move(request, -1)

    def _credit(self, request: dict[str, Value]) -> dict[str, Value]:
        return self._move(request, +1)

    def _move(self, request: dict[str, Value], direction: int) -> dict[str, Value]:
        reference, number = str(request["reference"]), str(request["account"])
        currency, amount = str(request["currency"]), int(request["amount"])
        if not reference:
            return {"result": "0030", "account": number}
        if reference in self.entries:
            return {**self._answer(self.entries[reference]), "result": "0094"}
        entry = CoreEntry(
            reference, str(request["txn_code"]), number, currency, amount, "D", "0000"
        )
        account = self.accounts.get(number)
        if account is None:
            entry.result = "0014"
        elif amount <= 0 or currency != account.currency:
            entry.result = "0013"
        elif direction < 0 and account.balance < amount:
            entry.result = "0051"
        else:
            account.balance += direction * amount
            entry.status = "A"
            self.journal_no += 1
            entry.journal_no = self.journal_no
        self.entries[reference] = entry
        return self._answer(entry)

    def _transfer(self, request: dict[str, Value]) -> dict[str, Value]:
        reference, number = str(request["reference"]), str(request["account"])
        target, currency = str(request["to_account"]), str(request["currency"])
        amount, fee = int(request["amount"]), int(request["fee"])
        if not reference:
            return {"result": "0030", "account": number}
        if reference in self.entries:
            return {**self._answer(self.entries[reference]), "result": "0094"}
        entry = CoreEntry(
            reference, "XFER", number, currency, amount, "D", "0000", to_account=target, fee=fee
        )
        source, destination = self.accounts.get(number), self.accounts.get(target)
        if source is None or destination is None:
            entry.result = "0014"
        elif (
            amount <= 0
            or fee < 0
            or number == target
            or currency != source.currency
            or currency != destination.currency
        ):
            entry.result = "0013"
        elif source.balance < amount + fee:
            entry.result = "0051"
        else:
            source.balance -= amount + fee
            destination.balance += amount
            entry.status = "A"
            self.journal_no += 1
            entry.journal_no = self.journal_no
        self.entries[reference] = entry
        return self._answer(entry)

    def _answer(self, entry: CoreEntry) -> dict[str, Value]:
        return {
            "result": entry.result,
            "reference": entry.reference,
            "account": entry.account,
            "currency": entry.currency,
            "amount": entry.amount,
            "status": entry.status,
            "original_txn": entry.txn_code,
            "journal_no": entry.journal_no,
            **self._balances(entry.account),
        }

    def _status(self, request: dict[str, Value]) -> dict[str, Value]:
        entry = self.entries.get(str(request["reference"]))
        if entry is None:
            return {"result": "0025", "reference": request["reference"]}
        return {**self._answer(entry), "result": "0000"}

    def _reverse(self, request: dict[str, Value]) -> dict[str, Value]:
        reference = str(request["reference"])
        if not reference:
            return {"result": "0030"}
        entry = self.entries.get(reference)
        if entry is None:
            # Remember it: the original, if it is still on its way, must not apply after this.
            entry = CoreEntry(reference, "", "", "", 0, "R", "0000")
            self.entries[reference] = entry
        elif entry.status == "A":
            undo = _undo(entry)
            if any(self.accounts[n].balance + change < 0 for n, change in undo.items()):
                return {**self._answer(entry), "result": "0051"}
            for number, change in undo.items():
                self.accounts[number].balance += change
            entry.status = "R"
            self.journal_no += 1
            entry.journal_no = self.journal_no
        return {**self._answer(entry), "result": "0000"}


def _undo(entry: CoreEntry) -> dict[str, int]:
    """Return what reversing an applied entry changes, by account."""
    if entry.txn_code == "XFER":
        return {entry.account: entry.amount + entry.fee, entry.to_account: -entry.amount}
    return {entry.account: entry.amount if entry.txn_code == "DEBT" else -entry.amount}


def _txn_code(record: bytes) -> str:
    """Return a request record's transaction code, or "" when it has none readable."""
    try:
        return record[:4].decode(CORE_REQUEST.encoding.value)
    except (UnicodeDecodeError, LookupError):
        return ""


class CoreSimulator(SimulatedServer[Faults]):
    """The simulated core: an asyncio TCP server over a book of accounts."""

    kind = "core"
    connection_errors = (*SimulatedServer.connection_errors, FixedFrameError)

    def __init__(
        self, accounts: dict[str, CoreAccount] | None = None, faults: Faults | None = None
    ) -> None:
        super().__init__(faults or Faults())
        self.book = _Book(accounts if accounts is not None else seed_accounts())
        self.framing = CORE_FRAMING

    @property
    def accounts(self) -> dict[str, CoreAccount]:
        """Return the core's accounts, by number."""
        return self.book.accounts

    def balance(self, number: str) -> int:
        """Return an account's balance in minor units (the core's side of the books)."""
        return self.book.accounts[number].balance

    def entry(self, reference: str) -> CoreEntry | None:
        """Return what the core remembers of ``reference``, if anything."""
        return self.book.entries.get(reference)

    async def set_faults(
        self,
        *,
        slow_ms: int | None = None,
        drop: bool | None = None,
        garbage: bool | None = None,
        down: bool | None = None,
        drop_codes: frozenset[str] | None = None,
        lose_codes: frozenset[str] | None = None,
    ) -> Faults:
        """Change how the core misbehaves (a value left out stays as it is); return the
        faults now in force."""
        if slow_ms is not None and slow_ms < 0:
            raise ValueError("slow_ms is >= 0")
        return await self._change_faults(
            slow_ms=slow_ms,
            drop=drop,
            garbage=garbage,
            down=down,
            drop_codes=drop_codes,
            lose_codes=lose_codes,
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            async with asyncio.timeout(IDLE_SECONDS):
                prefix = await reader.readexactly(self.framing.prefix_bytes)
            async with asyncio.timeout(READ_SECONDS):
                size = int.from_bytes(prefix, "big")
                self.framing.check_size(size)
                record = await reader.readexactly(size)
            if self.faults.slow_ms:
                await self._pause(self.faults.slow_ms / 1000)
            if self.faults.down or writer.transport.is_closing():
                return
            code = _txn_code(record)
            if code in self.faults.lose_codes:
                continue
            answer = self.answer(record)
            if self.faults.drop or code in self.faults.drop_codes:
                continue
            if self.faults.garbage:
                # Right length, but 0xFF is no packed digit: it frames and does not decode.
                answer = b"\xff" * CORE_RESPONSE.size
            writer.write(self.framing.frame(answer))
            await writer.drain()

    def answer(self, record: bytes) -> bytes:
        """Apply one request record and return the answer record (no faults involved)."""
        try:
            request = decode(CORE_REQUEST, record)
        except FixedDecodeError as error:
            log.info("core_simulator_format_error", field=error.field, offset=error.offset)
            return encode(CORE_RESPONSE, {"result": "0030"})
        try:
            return encode(CORE_RESPONSE, self.book.process(request))
        except Exception:  # a core answers 0096, whatever broke inside it
            log.exception("core_simulator_error")
            return encode(CORE_RESPONSE, {"txn_code": str(request["txn_code"]), "result": "0096"})
