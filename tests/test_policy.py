"""The analyst policy, row by row: every allowed plan node, denied statement, denied function
and allowed setting of dicomsql.server.policy has a statement here that Spark's own parser
turns into it, checked in a client session of the suite's Spark (nothing runs)."""

from __future__ import annotations

import dataclasses

import pytest
from pyspark.sql import SparkSession

from dicomsql.server import policy

#: (statement, the rule that refuses it, or None when allowed), for an analyst "alice" whose
#: session is in user_alice, with the shared database "shared" and its own view "mine".
CASES: list[tuple[str, str | None]] = [
    # queries
    ("SELECT 1", None),
    ("SELECT * FROM served WHERE a > 0", None),
    (
        "SELECT a, count(*) FROM served GROUP BY a HAVING count(*) > 1 ORDER BY 1 LIMIT 5 OFFSET 1",
        None,
    ),
    (
        "SELECT * FROM served x JOIN mine y USING (a) UNION SELECT 1 INTERSECT SELECT 1 EXCEPT SELECT 2",
        None,
    ),
    ("SELECT * FROM served x JOIN LATERAL (SELECT x.a) y", None),
    ("SELECT DISTINCT a FROM served", None),
    ("WITH c AS (SELECT * FROM shared.facts) SELECT * FROM c", None),
    ("VALUES (1), (2)", None),
    ("VALUES (1, rand())", None),
    ("SELECT * FROM VALUES (1, 2) AS t(a, b)", None),
    ("TABLE served", None),
    ("SELECT * FROM served LATERAL VIEW explode(array(1)) x AS y", None),
    ("SELECT * FROM served PIVOT (sum(a) FOR a IN (1, 2))", None),
    ("SELECT * FROM served UNPIVOT (v FOR k IN (a))", None),
    ("SELECT * FROM served TABLESAMPLE (10 PERCENT)", None),
    ("SELECT * FROM served CLUSTER BY a", None),
    ("SELECT /*+ REPARTITION(3) */ * FROM served", None),
    ("SELECT /*+ REBALANCE */ * FROM served", None),
    ("SELECT a, sum(a) OVER w FROM served WINDOW w AS (PARTITION BY a)", None),
    ("FROM served |> WHERE a > 1 |> SELECT a", None),
    ("SELECT * FROM range(10)", None),
    ("SELECT * FROM range(3) AS r(n)", None),
    ("SELECT * FROM (SELECT 1) AS s(n)", None),
    ("SELECT a FROM served GROUP BY CUBE(a)", None),
    ("SELECT transform(array(1), x -> x + 1), upper('a'), dicom_tag('{}', 'PatientID')", None),
    ("SELECT * FROM spark_catalog.user_alice.t", None),
    ("EXPLAIN SELECT * FROM served", None),
    ("EXPLAIN SELECT reflect('java.lang.System', 'exit', '1')", "no_code"),
    ("DESCRIBE QUERY SELECT java_method('java.lang.System', 'exit', '1')", "no_code"),
    # SHOW and DESCRIBE
    ("SHOW TABLES", None),
    ("SHOW TABLES IN shared", None),
    ("SHOW TABLES IN user_bob", "read_allowed_databases"),
    ("SHOW TABLE EXTENDED LIKE 'm*'", None),
    ("SHOW VIEWS", None),
    ("SHOW COLUMNS IN served", None),
    ("SHOW FUNCTIONS", None),
    (
        "SHOW DATABASES",
        "default_deny",
    ),  # it would list every user_<name>: JDBC's getSchemas lists the readable ones
    ("SHOW CREATE TABLE shared.facts", None),
    ("SHOW TBLPROPERTIES shared.facts", None),
    ("SHOW PARTITIONS shared.facts", None),
    ("SHOW CATALOGS", None),
    ("SHOW CURRENT NAMESPACE", None),
    ("DESCRIBE served", None),
    ("DESCRIBE served a", None),
    ("DESCRIBE DATABASE shared", None),
    ("DESCRIBE FUNCTION abs", None),
    ("DESCRIBE SELECT 1", None),
    ("DESCRIBE TABLE user_bob.t", "read_allowed_databases"),
    # the session
    ("SET", None),
    ("SET -v", None),
    ("SET spark.sql.shuffle.partitions", None),
    *[(f"SET {key}={policy.SETTING_BOUNDS.get(key, (1,))[0]}", None) for key in policy.SETTINGS],
    ("SET spark.sql.shuffle.partitions=2147483647", "setting_not_allowed"),
    ("SET spark.sql.files.maxPartitionBytes=1", "setting_not_allowed"),
    ("SET spark.sql.autoBroadcastJoinThreshold=10g", "setting_not_allowed"),
    ("SET spark.sql.runSQLOnFiles=true", "setting_not_allowed"),
    ("SET spark.sql.variable.substitute=true", "setting_not_allowed"),
    ("SET spark.sql.execution.pyspark.python=/bin/sh", "setting_not_allowed"),
    ("RESET", None),
    ("USE shared", None),
    ("USE user_bob", "read_allowed_databases"),
    ("CREATE TEMPORARY VIEW v AS SELECT * FROM served", None),
    ("CREATE GLOBAL TEMPORARY VIEW g AS SELECT 1", "temporary_views_only"),
    ("CREATE VIEW v AS SELECT 1", None),
    (
        "CREATE OR REPLACE VIEW user_alice.v AS SELECT * FROM t UNION ALL SELECT * FROM user_alice.u",
        None,
    ),
    ("CREATE VIEW v AS SELECT * FROM shared.facts", "temporary_views_only"),
    (
        "CREATE VIEW v AS SELECT * FROM t WHERE a IN (SELECT a FROM shared.facts)",
        "temporary_views_only",
    ),
    ("CREATE VIEW shared.v AS SELECT 1", "write_own_database"),
    ("ALTER VIEW v AS SELECT * FROM t", None),
    ("ALTER VIEW v AS SELECT * FROM shared.facts", "temporary_views_only"),
    ("ALTER VIEW shared.v AS SELECT 1", "write_own_database"),
    ("ALTER VIEW v SET TBLPROPERTIES ('k' = 'v')", None),
    ("ALTER VIEW mine AS SELECT 2", "temporary_views_only"),
    ("ALTER VIEW served AS SELECT 2", "temporary_views_only"),
    ("ALTER VIEW served SET TBLPROPERTIES ('k' = 'v')", "temporary_views_only"),
    ("CREATE VIEW v AS SELECT reflect('java.lang.System', 'exit', '1')", "no_code"),
    ("ALTER VIEW v AS SELECT java_method('java.lang.System', 'exit', '1')", "no_code"),
    ("ALTER VIEW shared.v SET TBLPROPERTIES ('k' = 'v')", "write_own_database"),
    ("CREATE TEMPORARY VIEW d USING dicom OPTIONS (path '{roots}')", None),
    ("CREATE TEMPORARY VIEW d USING dicom OPTIONS (path '/etc')", "no_file_access"),
    ("CREATE TEMPORARY VIEW t USING tfrecord OPTIONS (path '{roots}')", None),
    ("CREATE TEMPORARY VIEW t USING tfrecord OPTIONS (path '/etc')", "no_file_access"),
    (
        "CREATE TEMPORARY VIEW p USING dimse OPTIONS (host '10.0.0.1', port '104', called_ae 'PACS')",
        "no_network",
    ),
    ("CREATE TEMPORARY VIEW t USING tfrecord OPTIONS (path '{roots}', mdoe 'x')", "no_file_access"),
    ("CREATE TEMPORARY VIEW d USING text OPTIONS (path '/etc/passwd')", "no_file_access"),
    ("CACHE TABLE mine", None),
    ("CACHE TABLE c AS SELECT 1", None),
    ("CACHE TABLE served", "own_views_only"),
    ("UNCACHE TABLE mine", None),
    ("DROP VIEW mine", None),
    ("DROP VIEW served", "own_views_only"),
    # the own database
    ("CREATE TABLE t AS SELECT 1 AS a", None),
    ("CREATE TABLE user_alice.t USING parquet AS SELECT 1 AS a", None),
    ("CREATE TABLE t (a INT)", None),
    ("CREATE TABLE t USING csv AS SELECT 1 AS a", "write_own_database"),
    ("CREATE TABLE shared.t AS SELECT 1 AS a", "write_own_database"),
    ("CREATE TABLE t LOCATION '/tmp/t' AS SELECT 1 AS a", "no_file_access"),
    ("CREATE TABLE t USING parquet OPTIONS (path '/tmp/t') AS SELECT 1 AS a", "no_file_access"),
    ("CREATE TABLE t STORED AS textfile AS SELECT 1 AS a", "no_file_access"),
    ("INSERT INTO t SELECT 2", None),
    ("INSERT OVERWRITE TABLE t SELECT 2", None),
    ("INSERT INTO shared.t SELECT 2", "write_own_database"),
    ("INSERT INTO t PARTITION (p = 1) SELECT 2", "write_own_database"),
    ("DROP TABLE IF EXISTS t", None),
    ("ALTER TABLE t RENAME TO t2", None),
    ("ALTER TABLE user_alice.t RENAME TO shared.t", "write_own_database"),
    ("ALTER TABLE shared.t RENAME TO t", "write_own_database"),
    ("ALTER VIEW mine RENAME TO yours", "temporary_views_only"),
    ("DROP VIEW IF EXISTS not_a_view", None),
    (
        "BEGIN DROP VIEW mine; DROP VIEW mine; END",
        None,
    ),  # in the own database: a second drop finds nothing else
    ("DROP VIEW shared.v", "own_views_only"),
    ("DROP TABLE shared.t", "write_own_database"),
    ("SELECT * FROM user_bob.t", "read_allowed_databases"),
    ("SELECT * FROM global_temp.g", "read_allowed_databases"),
    ("SELECT * FROM a.b.c.d", "read_allowed_databases"),
    ("SELECT * FROM served WITH ('path' = '/etc')", "no_file_access"),
    # SQL scripting
    ("BEGIN DECLARE n INT = 0; SET n = n + 1; SELECT n; END", None),
    ("BEGIN IF 1 > 0 THEN SELECT 1; ELSE SELECT 2; END IF; END", None),
    ("BEGIN inner_block: BEGIN LEAVE inner_block; END; END", None),
    (
        "BEGIN DECLARE n INT = 0; WHILE n < 2 DO SET n = n + 1; END WHILE; SELECT n; END",
        "no_loops_in_scripts",
    ),
    ("BEGIN REPEAT SELECT 1; UNTIL true END REPEAT; END", "no_loops_in_scripts"),
    ("BEGIN l: LOOP LEAVE l; END LOOP; END", "no_loops_in_scripts"),
    ("BEGIN l: WHILE true DO ITERATE l; END WHILE; END", "no_loops_in_scripts"),
    ("BEGIN CASE WHEN 1 = 1 THEN SELECT 1; END CASE; END", None),
    ("BEGIN CASE 1 WHEN 1 THEN SELECT 1; END CASE; END", None),
    ("BEGIN FOR r AS SELECT 1 AS a DO SELECT r.a; END FOR; END", "no_loops_in_scripts"),
    ("BEGIN DECLARE x INT; DROP TEMPORARY VARIABLE x; END", None),
    (
        "BEGIN SELECT 1; IF true THEN SELECT reflect('java.lang.System', 'exit', '1'); END IF; END",
        "no_code",
    ),
    ("BEGIN USE shared; CREATE TABLE t AS SELECT 1; END", "no_use_in_scripts"),
    (
        "BEGIN DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN SELECT 1; END; SELECT 2; END",
        "default_deny",
    ),
    # denied statements, each by its rule
    ("ADD JAR /tmp/x.jar", "no_code"),
    ("ADD FILE /tmp/x.py", "no_code"),
    ("ADD ARCHIVE /tmp/x.zip", "no_code"),
    ("SELECT TRANSFORM(a) USING 'cat' FROM served", "no_code"),
    ("CREATE FUNCTION f AS 'x.Y' USING JAR '/tmp/x.jar'", "no_code"),
    ("CREATE TEMPORARY FUNCTION f(x INT) RETURNS INT RETURN x", "no_code"),
    ("INSERT OVERWRITE DIRECTORY '/tmp/x' USING text SELECT 'a'", "no_file_access"),
    ("LOAD DATA LOCAL INPATH '/etc/passwd' INTO TABLE t", "no_file_access"),
    ("EXECUTE IMMEDIATE 'SELECT 1'", "no_dynamic_sql"),
    ("CREATE DATABASE x", "default_deny"),
    ("ALTER TABLE t SET LOCATION '/tmp'", "default_deny"),
    ("MSCK REPAIR TABLE t", "default_deny"),
    # functions
    *[
        (f"SELECT {name}('a', 'b', 'c')", policy.DENIED_FUNCTIONS[name][0])
        for name in policy.DENIED_FUNCTIONS
    ],
    ("SELECT (SELECT reflect('a', 'b'))", "no_code"),
    ("SELECT * FROM served WHERE a IN (SELECT java_method('a', 'b'))", "no_code"),
    ("WITH c AS (SELECT reflect('a', 'b')) SELECT * FROM c", "no_code"),
    ("SELECT db.f(1)", "function_not_allowed"),
    (
        "SELECT IDENTIFIER('java_' || 'method')('java.lang.System', 'exit', '0')",
        "function_not_allowed",
    ),
    (
        "SELECT from_xml('<a>1</a>', 'a INT', map('rowValidationXSDPath', 'file:///etc/shadow'))",
        "no_file_access",
    ),
    ("INSERT INTO served SELECT 2", "write_own_database"),
    ("INSERT INTO t WITH ('fs.permissions.umask-mode' = '000') SELECT 2", "no_file_access"),
    ("SELECT no_such_function(1)", "function_not_allowed"),
    ("SELECT system.builtin.abs(-1)", None),
    ("SELECT * FROM no_such_table_function(1)", "function_not_allowed"),
    # dicom_export: only into the analyst's own export folder (the scope's), named literally
    ("SELECT * FROM dicom_export(TABLE(SELECT meta FROM served), '/srv/exports/alice/x')", None),
    ("SELECT * FROM dicom_export(TABLE(served), out_dir => '/srv/exports/alice')", None),
    ("SELECT * FROM dicom_export(TABLE(served), '/srv/exports/alice/../bob')", "no_file_access"),
    ("SELECT * FROM dicom_export(TABLE(served), '/srv/exports/alicex')", "no_file_access"),
    ("SELECT * FROM dicom_export(TABLE(served), '/etc/cron.d')", "no_file_access"),
    ("SELECT * FROM tfrecord_export(TABLE(served), '/srv/exports/alice/train')", None),
    ("SELECT * FROM tfrecord_export(TABLE(served), '/etc/cron.d')", "no_file_access"),
    (
        "SELECT * FROM dicom_export(TABLE(served), concat('/srv/exports/', 'alice'))",
        "no_file_access",
    ),
    ("SELECT * FROM dicom_export(TABLE(served), NULL)", "no_file_access"),
    (
        "SELECT * FROM dicom_export(TABLE(served), '/etc', out_dir => '/srv/exports/alice')",
        "no_file_access",
    ),
    (
        "SELECT * FROM dicom_export(TABLE(SELECT * FROM secret.t), '/srv/exports/alice')",
        "read_allowed_databases",
    ),
]


@pytest.fixture(scope="module")
def scope(spark, demo):
    served = SparkSession(spark.sparkContext, spark._jsparkSession.cloneSession())
    served.sql("CREATE OR REPLACE TEMPORARY VIEW served AS SELECT 1 AS a")
    client = SparkSession(served.sparkContext, served._jsparkSession.cloneSession())
    client.sql("CREATE DATABASE IF NOT EXISTS user_alice")
    client.catalog.setCurrentDatabase("user_alice")
    client.sql("CREATE OR REPLACE TEMPORARY VIEW mine AS SELECT 1 AS a")

    def check_paths(paths: list[str]) -> None:  # the data roots: the demo cohort
        from dicomsql.errors import DicomsqlError

        if any(not p.startswith(str(demo)) for p in paths):
            raise DicomsqlError(f"{paths} is outside the data roots")

    return policy.Scope(
        "user_alice",
        frozenset({"shared"}),
        policy.Functions.of(served),
        client,
        served_views=frozenset({"served"}),
        check_paths=check_paths,
        export_folders=("/srv/exports/alice",),
    )


def _parse(scope, statement: str):
    return scope.session._jsparkSession.sessionState().sqlParser().parsePlan(statement)


def _check_case(scope, demo, statement: str, rule: str | None) -> None:
    """``statement`` is allowed in ``scope`` (rule None), or refused naming ``rule``."""
    plan = _parse(scope, statement.replace("{roots}", str(demo / "images")))
    if rule is None:
        policy.check(plan, scope)
        return
    with pytest.raises(policy.PolicyViolation) as refused:
        policy.check(plan, scope)
    assert refused.value.rule == rule, str(refused.value)
    assert f"rule {rule} ({policy.RULES[rule]})" in str(refused.value)


@pytest.mark.parametrize("statement, rule", CASES, ids=[c[0][:60] for c in CASES])
def test_policy_row(scope, demo, statement, rule):
    _check_case(scope, demo, statement, rule)


#: Statements of the deidentified role (its scope reads no shared database, and no files).
DEIDENTIFIED_CASES = [
    ("CREATE TEMPORARY VIEW raw USING dicom OPTIONS (path '{roots}')", "deidentified_only"),
    ("CREATE TEMPORARY VIEW raw USING parquet OPTIONS (path '/tmp')", "deidentified_only"),
    ("SELECT * FROM shared.t", "read_allowed_databases"),
    ("SELECT * FROM served", None),
    ("SELECT dicom_pseudonym('DEMO-0001')", "deidentified_only"),
    ("SELECT * FROM dicom_export(TABLE(served), '/srv/exports/alice')", "deidentified_only"),
]


@pytest.mark.parametrize(
    "statement, rule", DEIDENTIFIED_CASES, ids=[c[0][:60] for c in DEIDENTIFIED_CASES]
)
def test_deidentified_policy_row(scope, demo, statement, rule):
    deidentified = dataclasses.replace(scope, shared_databases=frozenset(), deidentified=True)
    _check_case(deidentified, demo, statement, rule)


def test_exports_are_refused_unless_the_server_grants_them(scope):
    ungranted = dataclasses.replace(scope, export_folders=())
    plan = _parse(scope, "SELECT * FROM dicom_export(TABLE(served), '/srv/exports/alice')")
    with pytest.raises(policy.PolicyViolation, match="admins only, unless --analyst-exports"):
        policy.check(plan, ungranted)


def test_every_row_of_the_policy_has_a_case(scope, demo):
    """Every allowed node appears in an allowed case's plan, every denied statement and
    function is refused by some case, and every rule is some case's answer."""
    seen: set[str] = set()
    for statement, rule in CASES:
        if rule is None:
            plan = _parse(scope, statement.replace("{roots}", str(demo / "images")))
            seen |= {node.getClass().getSimpleName() for node in policy._nodes(plan)}
    assert set(policy.NODES) - seen == set()
    refused = {
        node.getClass().getSimpleName()
        for s, rule in CASES
        if rule
        for node in policy._nodes(_parse(scope, s))
    }
    assert set(policy.DENIED) - refused == set()
    assert {rule for _, rule in CASES + DEIDENTIFIED_CASES if rule} == set(policy.RULES)
