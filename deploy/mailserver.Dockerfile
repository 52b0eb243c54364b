# Demo mail server for `docker compose --profile demo`: Dovecot IMAP/LMTP plus the
# authenticated SMTP submission server that delivers into it, as `make infra` runs them.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends dovecot-imapd dovecot-lmtpd python3 python3-venv netcat-openbsd \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/mailsync
COPY deploy/devmail deploy/devmail
COPY deploy/dovecot deploy/dovecot
RUN python3 -m venv /opt/devmail && /opt/devmail/bin/pip install --no-cache-dir ./deploy/devmail
ENV INFRA=/srv/mailsync/.infra
RUN mkdir -p $INFRA/dovecot $INFRA/mail $INFRA/logs \
 && sed "s#@INFRA@#$INFRA#g; s#127.0.0.1#0.0.0.0#g" deploy/dovecot/dovecot.conf > $INFRA/dovecot/dovecot.conf \
 && touch $INFRA/dovecot/users && chown -R mail:mail $INFRA/mail
EXPOSE 10143 10587
CMD ["sh", "-c", "dovecot -c $INFRA/dovecot/dovecot.conf && exec /opt/devmail/bin/python -m mailsync_devmail.smtp_server --listen 0.0.0.0:10587 --lmtp 127.0.0.1:10024 --users $INFRA/dovecot/users"]
