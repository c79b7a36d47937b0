"""Guards the result collapse of the seed-job bench (plain Python, no
dependencies): python3 tests/benches/seed_jobs/test_results.py"""

import unittest
from decimal import Decimal

from results import INT, MONEY, TEXT, Table, differences, flink_tables, reference_table, sluice_table

HOURS = Table("hs_order", {"biz_date": TEXT, "total_premium": MONEY, "policy_cnt": INT}, key=["biz_date"])
ALERTS = Table("alerts", {"id": INT, "now_premium": TEXT})


class Collapse(unittest.TestCase):
    def test_sluice_upserts_and_deletes(self):
        lines = [
            '{"biz_date":"2024031508","total_premium":10.5,"policy_cnt":1}',
            '{"biz_date":"2024031509","total_premium":3,"policy_cnt":1}',
            '{"biz_date":"2024031508","total_premium":20.25,"policy_cnt":2}',
            '{"biz_date":"2024031509","total_premium":3,"policy_cnt":1,"_op":"delete"}',
        ]
        table = sluice_table(HOURS, lines)
        self.assertEqual(list(table.elements()), [("2024031508", Decimal("20.25"), 2)])

    def test_flink_changelog(self):
        lines = [
            'hs_order> +I[{"biz_date":"2024031508","policy_cnt":1,"total_premium":10.5}]',
            "some log line of Flink's",
            'hs_order> -U[{"biz_date":"2024031508","policy_cnt":1,"total_premium":10.5}]',
            'hs_order> +U[{"biz_date":"2024031508","policy_cnt":2,"total_premium":20.250000000000004}]',
            'hs_order> +I[{"biz_date":"2024031509","policy_cnt":1,"total_premium":3.0}]',
            'hs_order> -D[{"biz_date":"2024031509","policy_cnt":1,"total_premium":3.0}]',
        ]
        table = flink_tables([HOURS], lines)["hs_order"]
        self.assertEqual(list(table.elements()), [("2024031508", Decimal("20.25"), 2)])

    def test_append_only_tables_are_multisets(self):
        sluice = sluice_table(ALERTS, ['{"id":1,"now_premium":"5"}', '{"id":1,"now_premium":"5"}'])
        flink = flink_tables([ALERTS], ['alerts> +I[{"id":1,"now_premium":"5"}]'])["alerts"]
        self.assertEqual(sum(sluice.values()), 2)
        self.assertEqual(differences("sluice", sluice, "flink", flink)[0], "2 rows in sluice, 1 in flink; 1 only in sluice, 0 only in flink")

    def test_reference_text_equals_numbers(self):
        ref = reference_table(HOURS, [("2024031508", "20.25", "2")])
        self.assertEqual(differences("ref", ref, "sluice", sluice_table(HOURS, ['{"biz_date":"2024031508","total_premium":20.25,"policy_cnt":2}'])), [])

    def test_a_retraction_of_a_missing_row_is_an_error(self):
        with self.assertRaises(ValueError):
            flink_tables([HOURS], ['hs_order> -D[{"biz_date":"x","policy_cnt":1,"total_premium":1}]'])

    def test_duplicate_keys_in_flink_output_are_an_error(self):
        with self.assertRaises(ValueError):
            flink_tables([HOURS], [
                'hs_order> +I[{"biz_date":"x","policy_cnt":1,"total_premium":1}]',
                'hs_order> +I[{"biz_date":"x","policy_cnt":2,"total_premium":1}]',
            ])


if __name__ == "__main__":
    unittest.main()
