"""The error-code catalog: every canonical code, its HTTP status, ISO 8583 field 39, messages.

A channel maps a canonical code to its own wire through this table and nothing else, so a code
means the same on the app, the ATM and the partner API. Field-39 values follow ISO 8583:1987 as
card networks use them ("00" approved, "51" insufficient funds, "96" system malfunction ...).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CODES", "ErrorCode", "lookup"]


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One canonical outcome code and how every wire shows it."""

    code: str
    http_status: int
    iso8583: str
    message_en: str
    message_zh: str

    def message(self, locale: str = "en") -> str:
        """Return the default message in ``locale`` ("en" or "zh"), English otherwise."""
        return self.message_zh if locale == "zh" else self.message_en


_TABLE: tuple[ErrorCode, ...] = (
    ErrorCode("OK", 200, "00", "Completed", "交易成功"),
    # The request itself is wrong: nothing was executed.
    ErrorCode("MALFORMED_REQUEST", 400, "30", "The request is not well-formed", "请求格式错误"),
    ErrorCode("VALIDATION_FAILED", 400, "30", "A field of the request is invalid", "请求字段无效"),
    ErrorCode("INVALID_AMOUNT", 400, "13", "The amount is not valid", "金额无效"),
    ErrorCode("CURRENCY_MISMATCH", 400, "13", "The currencies do not match", "币种不一致"),
    ErrorCode(
        "IDEMPOTENCY_KEY_INVALID", 400, "30", "The idempotency key is not valid", "幂等键无效"
    ),
    ErrorCode(
        "IDEMPOTENCY_KEY_REQUIRED",
        400,
        "30",
        "This service needs an idempotency key",
        "该服务需要幂等键",
    ),
    ErrorCode("PAYLOAD_TOO_LARGE", 413, "30", "The request is too large", "请求过大"),
    ErrorCode(
        "UNSUPPORTED_MEDIA_TYPE", 415, "30", "The request must be JSON", "请求必须为 JSON 格式"
    ),
    # Who is calling.
    ErrorCode("UNAUTHENTICATED", 401, "63", "Authentication is required", "需要身份认证"),
    ErrorCode(
        "AUTH_LEVEL_INSUFFICIENT",
        401,
        "63",
        "A stronger authentication is required",
        "需要更高级别的身份认证",
    ),
    ErrorCode("FORBIDDEN", 403, "57", "This operation is not permitted", "无权执行此操作"),
    ErrorCode(
        "STEP_UP_REQUIRED",
        401,
        "1A",  # the card schemes' "additional customer authentication required"
        "Confirm this transaction with a one-time code",
        "请使用动态验证码确认本笔交易",
    ),
    ErrorCode(
        "SIGNATURE_INVALID",
        401,
        "63",
        "The request signature is missing or does not match",
        "请求签名缺失或不匹配",
    ),
    ErrorCode(
        "REQUEST_EXPIRED",
        401,
        "63",
        "The request timestamp is too far from the server's time",
        "请求时间戳与服务器时间相差过大",
    ),
    ErrorCode("REQUEST_REPLAYED", 401, "94", "This request was already received", "重复的请求"),
    ErrorCode(
        "ADDRESS_NOT_ALLOWED",
        403,
        "57",
        "Calls from this address are not allowed",
        "不允许来自此地址的调用",
    ),
    ErrorCode(
        "CONSENT_INVALID",
        403,
        "57",
        "No consent in force covers this request",
        "没有有效的授权覆盖此请求",
    ),
    ErrorCode(
        "SAME_APPROVER",
        403,
        "57",
        "A second, different staff member must approve this",
        "须由另一名工作人员审批",
    ),
    ErrorCode(
        "APPROVAL_NOT_PENDING",
        409,
        "12",
        "The approval request is no longer pending",
        "该审批请求已处理或已过期",
    ),
    ErrorCode(
        "APPROVAL_REQUIRED",
        202,
        "09",
        "A second staff member must approve this before it takes effect",
        "需经另一名工作人员审批后生效",
    ),
    ErrorCode(
        "PASSWORD_CHANGE_REQUIRED",
        403,
        "55",
        "The password must be changed before logging in",
        "登录前须修改密码",
    ),
    ErrorCode(
        "INVALID_CREDENTIALS",
        401,
        "55",
        "The username or password is wrong",
        "用户名或密码错误",
    ),
    ErrorCode(
        "LOGIN_LOCKED",
        429,
        "75",
        "Too many failed logins; try again later",
        "登录失败次数过多，请稍后再试",
    ),
    ErrorCode(
        "OTP_INVALID", 401, "55", "The one-time code is wrong or expired", "动态验证码错误或已过期"
    ),
    ErrorCode(
        "CHALLENGE_INVALID",
        401,
        "63",
        "The authentication challenge is unknown, used or expired",
        "认证挑战无效、已使用或已过期",
    ),
    ErrorCode(
        "TOKEN_INVALID",
        401,
        "63",
        "The token is invalid, expired or revoked",
        "令牌无效、已过期或已撤销",
    ),
    ErrorCode(
        "CHANNEL_NOT_ALLOWED",
        403,
        "57",
        "This user may not log in through this channel",
        "该用户不能通过此渠道登录",
    ),
    ErrorCode(
        "PASSWORD_REJECTED",
        422,
        "12",
        "The new password does not meet the password rules",
        "新密码不符合密码规则",
    ),
    ErrorCode(
        "MFA_NOT_ENROLLED",
        422,
        "12",
        "No second factor is enrolled",
        "尚未绑定第二认证因素",
    ),
    # What is asked for.
    ErrorCode("UNKNOWN_SERVICE", 404, "12", "The service does not exist", "服务不存在"),
    ErrorCode(
        "SERVICE_NOT_ON_CHANNEL",
        404,
        "58",
        "The service is not available on this channel",
        "该渠道不提供此服务",
    ),
    ErrorCode("NOT_FOUND", 404, "25", "The record does not exist", "记录不存在"),
    ErrorCode(
        "PAYMENT_REJECTED",
        422,
        "05",
        "The beneficiary's bank or the clearing house refused the payment",
        "收款行或清算机构拒绝了该笔汇款",
    ),
    # Conflicts with an earlier request.
    ErrorCode(
        "IDEMPOTENCY_KEY_REUSED",
        409,
        "94",
        "The idempotency key was used for a different request",
        "幂等键已用于其他请求",
    ),
    ErrorCode(
        "TXN_IN_PROGRESS",
        409,
        "09",
        "The same request is still being processed",
        "相同请求正在处理中",
    ),
    ErrorCode(
        "SELF_TRANSFER",
        400,
        "12",
        "The source and target accounts are the same",
        "转出转入账户相同",
    ),
    # Business refusals.
    ErrorCode("INSUFFICIENT_FUNDS", 422, "51", "Insufficient funds", "余额不足"),
    ErrorCode(
        "ACCOUNT_INACTIVE",
        422,
        "57",
        "The account is frozen, dormant or closed",
        "账户已冻结、休眠或销户",
    ),
    ErrorCode("ACCOUNT_CLOSED", 422, "57", "The account is closed", "账户已销户"),
    ErrorCode(
        "ACCOUNT_NOT_CREDITABLE",
        422,
        "57",
        "This kind of account cannot receive the payment",
        "该类账户不能接收此笔款项",
    ),
    ErrorCode("CARD_BLOCKED", 422, "62", "The card is blocked", "卡片已冻结"),
    ErrorCode("CARD_LOST", 422, "41", "The card is reported lost", "卡片已挂失"),
    # Cards at an ATM or POS terminal (the ISO 8583 channel).
    ErrorCode("CARD_NOT_FOUND", 404, "14", "The card number is not known", "卡号无效"),
    ErrorCode("CARD_EXPIRED", 422, "54", "The card has expired", "卡片已过期"),
    ErrorCode("PIN_INVALID", 401, "55", "The PIN is wrong", "密码错误"),
    ErrorCode(
        "PIN_TRIES_EXCEEDED",
        422,
        "75",
        "Too many wrong PINs; the card is blocked",
        "密码错误次数超限，卡片已冻结",
    ),
    ErrorCode(
        "MAC_INVALID", 401, "63", "The message authentication code is wrong", "报文校验码错误"
    ),
    ErrorCode(
        "DUPLICATE_TRANSMISSION",
        409,
        "94",
        "This message was already received",
        "重复的报文",
    ),
    ErrorCode(
        "CARD_STATUS_INVALID",
        409,
        "12",
        "The card is not in a state that allows this",
        "卡片当前状态不允许此操作",
    ),
    ErrorCode(
        "PRODUCT_NOT_ELIGIBLE",
        422,
        "57",
        "The customer is not eligible for this product",
        "客户不符合该产品的申请条件",
    ),
    ErrorCode(
        "CUSTOMER_NOT_IDENTIFIED",
        422,
        "14",
        "The customer could not be identified with what was shown",
        "无法凭所出示的证件或卡片识别客户",
    ),
    ErrorCode(
        "CUSTOMER_EXISTS",
        409,
        "12",
        "A customer with this identity document already exists",
        "已存在持此证件的客户",
    ),
    ErrorCode(
        "ACCOUNT_NOT_EMPTY",
        422,
        "12",
        "The account still holds money or has funds on hold",
        "账户仍有余额或冻结资金",
    ),
    ErrorCode("HOLD_NOT_ACTIVE", 409, "12", "The hold is no longer active", "预授权已完成或已撤销"),
    ErrorCode("LIMIT_EXCEEDED", 422, "61", "The limit is exceeded", "超出限额"),
    ErrorCode(
        "LIMIT_COUNT_EXCEEDED",
        422,
        "65",
        "The number of transactions allowed is exceeded",
        "超出交易次数限制",
    ),
    ErrorCode(
        "LIMIT_ABOVE_CEILING",
        422,
        "12",
        "A limit cannot be set above the bank's ceiling",
        "限额不能高于银行设定的上限",
    ),
    ErrorCode(
        "RISK_DENIED", 422, "59", "The transaction was refused by risk control", "交易被风控拒绝"
    ),
    ErrorCode(
        "REVIEW_PENDING",
        202,
        "09",
        "The transaction is held for review by the bank",
        "交易待银行审核",
    ),
    ErrorCode(
        "REVIEW_REJECTED",
        422,
        "59",
        "The bank's review rejected the transaction",
        "交易未通过银行审核",
    ),
    ErrorCode(
        "REVIEW_NOT_PENDING",
        409,
        "12",
        "The review was already decided",
        "该审核已处理",
    ),
    ErrorCode("RULE_INVALID", 400, "30", "The rule does not compile", "规则表达式无法编译"),
    ErrorCode("BUSINESS_RULE_VIOLATION", 422, "12", "The request was refused", "交易被拒绝"),
    # Throttling and availability.
    ErrorCode("RATE_LIMITED", 429, "91", "Too many requests", "请求过于频繁"),
    ErrorCode(
        "BACKEND_UNAVAILABLE",
        503,
        "91",
        "A back-end system is unavailable",
        "后台系统暂不可用",
    ),
    ErrorCode("BACKEND_TIMEOUT", 503, "68", "A back-end system did not answer", "后台系统超时"),
    ErrorCode(
        "BACKEND_BAD_RESPONSE",
        502,
        "96",
        "A back-end system gave an answer that cannot be understood",
        "后台系统返回了无法识别的应答",
    ),
    ErrorCode(
        "BACKEND_NOT_CONFIGURED",
        500,
        "96",
        "No back-end system is configured for this operation",
        "未配置处理此操作的后台系统",
    ),
    ErrorCode(
        "SERVICE_UNAVAILABLE", 503, "91", "The service is temporarily unavailable", "服务暂不可用"
    ),
    ErrorCode(
        "RISK_UNAVAILABLE",
        503,
        "91",
        "Risk control is unavailable; the transaction was not executed",
        "风控系统暂不可用，交易未执行",
    ),
    # Failures of the platform itself.
    ErrorCode(
        "TXN_ABORTED",
        500,
        "96",
        "The transaction was interrupted and has been undone",
        "交易中断，已撤销",
    ),
    ErrorCode(
        "LEDGER_UNBALANCED", 500, "96", "An accounting entry did not balance", "会计分录借贷不平"
    ),
    ErrorCode("INTERNAL_ERROR", 500, "96", "An internal error occurred", "系统内部错误"),
)

#: Canonical code -> its entry.
CODES: dict[str, ErrorCode] = {entry.code: entry for entry in _TABLE}


def lookup(code: str) -> ErrorCode:
    """Return the catalog entry of ``code``; an unknown code is reported as INTERNAL_ERROR."""
    return CODES.get(code) or CODES["INTERNAL_ERROR"]
