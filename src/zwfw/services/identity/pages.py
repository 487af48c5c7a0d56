"""Server-rendered login, second-factor, password-change and consent pages (no JavaScript)."""

from __future__ import annotations

from jinja2 import DictLoader, Environment, select_autoescape

_BASE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · 统一身份认证</title>
<style>body{font-family:sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.4rem}
button{margin-top:1rem;padding:.5rem 1.2rem}.error{color:#b00020}</style></head>
<body><h1>{{ title }}</h1>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
{% block body %}{% endblock %}</body></html>"""

_LOGIN = """{% extends "base" %}{% block body %}
<form method="post" action="{{ base }}/login">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
<label for="username">登录名 Login name</label>
<input id="username" name="username" autocomplete="username" required>
<label for="password">密码 Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">登录 Sign in</button></form>{% endblock %}"""

_SECOND = """{% extends "base" %}{% block body %}
{% if totp %}<form method="post" action="{{ base }}/login/totp">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
<label for="code">动态口令 One-time code</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required>
<button type="submit">确认 Verify</button></form>{% endif %}
{% if certificate %}<form method="post" action="{{ base }}/login/certificate">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
<p>使用法人数字证书签名以下挑战值 Sign this challenge with your certificate's key:</p>
<pre id="challenge">{{ challenge }}</pre>
<label for="signature">签名 Signature (base64, DER)</label>
<input id="signature" name="signature" required>
<button type="submit">确认 Verify</button></form>{% endif %}{% endblock %}"""

_PASSWORD = """{% extends "base" %}{% block body %}
<p>密码已过期，请修改 Your password has expired; choose a new one.</p>
<form method="post" action="{{ base }}/login/password">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
<label for="old">当前密码 Current password</label>
<input id="old" name="old_password" type="password" autocomplete="current-password" required>
<label for="new">新密码 New password</label>
<input id="new" name="new_password" type="password" autocomplete="new-password" required>
<button type="submit">修改 Change</button></form>{% endblock %}"""

_CONSENT = """{% extends "base" %}{% block body %}
<p><strong>{{ client_name }}</strong> 请求访问 asks for: {{ scopes }}</p>
<form method="post" action="{{ base }}/authorize">
<input type="hidden" name="csrf" value="{{ csrf }}">
{% for key, value in params %}<input type="hidden" name="{{ key }}" value="{{ value }}">
{% endfor %}
<button type="submit" name="decision" value="allow">同意 Allow</button>
<button type="submit" name="decision" value="deny">拒绝 Deny</button></form>{% endblock %}"""

_env = Environment(
    loader=DictLoader(
        {
            "base": _BASE,
            "login": _LOGIN,
            "second_factor": _SECOND,
            "password": _PASSWORD,
            "consent": _CONSENT,
        }
    ),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def render(name: str, **context: object) -> str:
    return _env.get_template(name).render(**context)


SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
