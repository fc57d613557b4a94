"""Labels of third-party apps that the admin shows in French, for makemessages to collect.

Why this module exists: django-celery-beat, django-axes and django-otp ship French catalogues
that miss, mark fuzzy or mistranslate several of the labels our admin shows (field names,
help texts, choices, admin actions and their messages, the lockout message). Our
LOCALE_PATHS catalogue takes precedence over an app's own, but `makemessages` collects only
the msgids found in our source: listing them here with `gettext_noop` (which marks a string
for translation without translating it) brings them into locale/fr/LC_MESSAGES/django.po,
where our French replaces theirs. Nothing imports this module; it is never executed for its
values. The msgids must stay byte for byte those of the installed versions (a test renders
the pages in French and checks that none of them is left in English).

Labels the apps do not mark for translation at all (django-celery-beat's "Task Name" and
its unnamed columns, django-otp's field names and help texts) cannot be reached by a
catalogue: core.admin renames the celery-beat ones it shows.
"""

from django.utils.translation import gettext_noop

# django-celery-beat (the periodic jobs' schedules: Administrators' pages)
CELERY_BEAT = (
    gettext_noop("Periodic Tasks"),
    gettext_noop("periodic tasks"),
    gettext_noop("periodic task track"),
    gettext_noop("periodic task tracks"),
    gettext_noop("Periodic Tasks Using This Schedule"),
    gettext_noop("interval"),
    gettext_noop("intervals"),
    gettext_noop("solar event"),
    gettext_noop("solar events"),
    gettext_noop("every {} {}"),
    gettext_noop("Task (custom)"),
    gettext_noop("Need name of task"),
    gettext_noop("Only one can be set, in expires and expire_seconds"),
    gettext_noop("Unable to parse JSON: %s"),
    gettext_noop("Enable selected tasks"),
    gettext_noop("Disable selected tasks"),
    gettext_noop("Toggle activity of selected tasks"),
    gettext_noop("Run selected tasks"),
    gettext_noop("{0} task{1} {2} successfully run"),
    gettext_noop("Solar Event"),
    gettext_noop("The type of solar event when the job should run"),
    gettext_noop("Run the task when the event happens at this latitude"),
    gettext_noop("Run the task when the event happens at this longitude"),
    gettext_noop("Number of Periods"),
    gettext_noop("Number of interval periods to wait before running the task again"),
    gettext_noop("Interval Period"),
    gettext_noop("The type of period between task runs (Example: days)"),
    gettext_noop("Clock Time"),
    gettext_noop("Run the task at clocked time"),
    gettext_noop("Minute(s)"),
    gettext_noop('Cron Minutes to Run. Use "*" for "all". (Example: "0,30")'),
    gettext_noop("Hour(s)"),
    gettext_noop('Cron Hours to Run. Use "*" for "all". (Example: "8,20")'),
    gettext_noop("Day(s) Of The Month"),
    gettext_noop('Cron Days Of The Month to Run. Use "*" for "all". (Example: "1,15")'),
    gettext_noop("Month(s) Of The Year"),
    gettext_noop('Cron Months (1-12) Of The Year to Run. Use "*" for "all". (Example: "1,12")'),
    gettext_noop("Day(s) Of The Week"),
    gettext_noop(
        'Cron Days Of The Week to Run. Use "*" for "all", Sunday is 0 or 7, Monday is 1. (Example: "0,5")'  # noqa: E501
    ),
    gettext_noop("Cron Timezone"),
    gettext_noop("Timezone to Run the Cron Schedule on. Default is UTC."),
    gettext_noop("Short Description For This Task"),
    gettext_noop(
        'The Name of the Celery Task that Should be Run.  (Example: "proj.tasks.import_contacts")'
    ),
    gettext_noop("Interval Schedule"),
    gettext_noop(
        "Interval Schedule to run the task on.  Set only one schedule type, leave the others null."
    ),
    gettext_noop("Crontab Schedule"),
    gettext_noop(
        "Crontab Schedule to run the task on.  Set only one schedule type, leave the others null."
    ),
    gettext_noop("Solar Schedule"),
    gettext_noop(
        "Solar Schedule to run the task on.  Set only one schedule type, leave the others null."
    ),
    gettext_noop("Clocked Schedule"),
    gettext_noop(
        "Clocked Schedule to run the task on.  Set only one schedule type, leave the others null."
    ),
    gettext_noop("Positional Arguments"),
    gettext_noop('JSON encoded positional arguments (Example: ["arg1", "arg2"])'),
    gettext_noop("Keyword Arguments"),
    gettext_noop('JSON encoded keyword arguments (Example: {"argument": "value"})'),
    gettext_noop("Queue Override"),
    gettext_noop("Queue defined in CELERY_TASK_QUEUES. Leave None for default queuing."),
    gettext_noop("Exchange"),
    gettext_noop("Override Exchange for low-level AMQP routing"),
    gettext_noop("Routing Key"),
    gettext_noop("Override Routing Key for low-level AMQP routing"),
    gettext_noop("AMQP Message Headers"),
    gettext_noop("JSON encoded message headers for the AMQP message."),
    gettext_noop(
        "Priority Number between 0 and 255. Supported by: RabbitMQ, Redis (priority reversed, 0 is highest)."  # noqa: E501
    ),
    gettext_noop("Datetime after which the schedule will no longer trigger the task to run"),
    gettext_noop("Expires timedelta with seconds"),
    gettext_noop(
        "Timedelta with seconds which the schedule will no longer trigger the task to run"
    ),
    gettext_noop("One-off Task"),
    gettext_noop("If True, the schedule will only run the task a single time"),
    gettext_noop("Start Datetime"),
    gettext_noop("Datetime when the schedule should begin triggering the task to run"),
    gettext_noop("Enabled"),
    gettext_noop("Set to False to disable the schedule"),
    gettext_noop("Last Run Datetime"),
    gettext_noop(
        "Datetime that the schedule last triggered the task to run. Reset to None if enabled is set to False."  # noqa: E501
    ),
    gettext_noop("Total Run Count"),
    gettext_noop("Running count of how many times the schedule has triggered the task"),
    gettext_noop("Datetime that this PeriodicTask was last modified"),
    gettext_noop("Detailed description about the details of this Periodic Task"),
)

# django-axes (the lockout message on the login page; lockouts in the admin)
AXES = (
    gettext_noop("Account locked: too many login attempts. Please try again later."),
    gettext_noop(
        "Account locked: too many login attempts. Contact an admin to unlock your account."
    ),
    gettext_noop("Locked Out"),
    gettext_noop("Attempt Remaining"),
    gettext_noop("Access Attempt"),
    gettext_noop("access attempt expiration"),
    gettext_noop("access attempt expirations"),
    gettext_noop("User Agent"),
)

# django-otp
OTP = (gettext_noop("Please select a device."),)
