"""Settings of the workers the campaign crash test starts: the test settings, with the mail
sent over SMTP to the server `EMAIL_URL` names (the test's own aiosmtpd server) rather than
written as files, which the test settings impose."""

from config.settings_test import *  # noqa: F403
from config.settings_test import EMAIL_CONFIG

EMAIL_BACKEND = EMAIL_CONFIG["EMAIL_BACKEND"]
