#!/usr/bin/python3
"""An SMTPUTF8 client for tests/smtputf8.rs: Python's smtplib, as a program that sends
internationalised mail would use it.

    smtputf8_client.py PORT FROM MESSAGE_FILE TO...

Sends one message with sendmail(FROM, [TO...], bytes of MESSAGE_FILE,
mail_options=["SMTPUTF8"]) after EHLO, and prints one line per event, fields separated by
a tab:
  EHLO  keyword ...            the extensions the server offered (lower case, sorted)
  REFUSED  address  code  text   a recipient the server refused
  SENT                         the message was accepted (250 to the dot)
  ERROR  class  text           smtplib raised (all recipients refused, 5xx to MAIL, ...)
"""
import smtplib
import sys


def say(*fields):
    print("\t".join(fields), flush=True)


def main():
    port, sender, message_file, *rcpts = sys.argv[1:]
    with open(message_file, "rb") as f:
        message = f.read()
    with smtplib.SMTP("127.0.0.1", int(port), local_hostname="client.test", timeout=30) as s:
        s.ehlo()
        say("EHLO", *sorted(s.esmtp_features))
        try:
            refused = s.sendmail(sender, rcpts, message, mail_options=["SMTPUTF8"])
        except smtplib.SMTPException as e:
            say("ERROR", type(e).__name__, str(e))
            return
        for address, (code, text) in sorted(refused.items()):
            say("REFUSED", address, str(code), text.decode("utf-8", "replace"))
        say("SENT")


if __name__ == "__main__":
    main()
