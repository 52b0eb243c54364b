# Local services (RabbitMQ, FerretDB, Dovecot, SMTP submission) for development and CI.
# Included from the main Makefile; see deploy/infra.sh (and `bash deploy/infra.sh help`).
# Use the services from a shell with:  eval "$$(bash deploy/infra.sh env)"

.PHONY: infra infra-stop infra-status

infra: ## start the local services (idempotent; quick when already running)
	bash deploy/infra.sh start

infra-stop: ## stop the local services
	bash deploy/infra.sh stop

infra-status: ## show which local services run
	bash deploy/infra.sh status
