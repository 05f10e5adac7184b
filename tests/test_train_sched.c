/* test_train_sched.c - schedule values a training config produces at chosen
 * steps (the shapes themselves are checked against the reference in
 * test_schedule_parity): warm-up ends at the peak lr of the scaling rule, the
 * last layer is frozen for its epochs, the teacher temperature warms up
 * linearly, and the Gram weight is 0 until its start, ramps by a half cosine
 * and then holds - DINOv3's way of switching the term on mid-run. */
#include "dx_test.h"
#include "train/train_sched.h"

int main(void) {
    dx_config c;
    dx_err err;
    const char *ov[] = {"train.epochs=10", "train.epoch_length=100", "train.batch_size=64", "optim.lr=1e-3",
                        "optim.warmup_epochs=2", "optim.freeze_last_layer_epochs=1", "optim.lr_scaling=sqrt_wrt_1024",
                        "teacher.temp_start=0.04", "teacher.temp_end=0.07", "teacher.temp_warmup_epochs=3",
                        "gram.enabled=true", "gram.weight=2", "gram.weight_start_epochs=5", "gram.weight_ramp_epochs=1"};
    dx_status st = dx_config_resolve(&c, NULL, ov, (int)(sizeof ov / sizeof ov[0]), &err);
    CHECK(st == DX_OK, "config: %s", err.msg);
    const double peak = 1e-3 * 4.0 * sqrt(64.0 / 1024.0); /* sqrt_wrt_1024 */
    dx_ssl_sched s;
    dx_train_sched_at(&c, 0, &s);
    CHECK_CLOSE(s.lr, 0.0, 1e-12, 0, "lr at step 0");
    CHECK_CLOSE(s.last_layer_lr, 0.0, 1e-12, 0, "last-layer lr at step 0");
    CHECK_CLOSE(s.teacher_temp, 0.04, 1e-7, 0, "teacher temp at step 0");
    CHECK_CLOSE(s.w_gram, 0.0, 1e-12, 0, "Gram weight before its start");
    dx_train_sched_at(&c, 199, &s); /* last warm-up step: linspace includes the end point */
    CHECK_CLOSE(s.lr, peak, 1e-9, 1e-6, "lr at the end of the warm-up");
    dx_train_sched_at(&c, 99, &s);
    CHECK_CLOSE(s.last_layer_lr, 0.0, 1e-12, 0, "last layer frozen in epoch 0");
    dx_train_sched_at(&c, 100, &s);
    CHECK(s.last_layer_lr > 0 && fabs(s.last_layer_lr - s.lr) < 1e-9, "last layer follows lr after the freeze");
    dx_train_sched_at(&c, 299, &s);
    CHECK_CLOSE(s.teacher_temp, 0.07, 1e-7, 0, "teacher temp at the end of its warm-up");
    dx_train_sched_at(&c, 150, &s);
    CHECK_CLOSE(s.teacher_temp, 0.04 + 0.03 * 150.0 / 299.0, 1e-7, 0, "teacher temp mid warm-up");
    dx_train_sched_at(&c, 499, &s);
    CHECK_CLOSE(s.w_gram, 0.0, 1e-12, 0, "Gram weight just before its start");
    dx_train_sched_at(&c, 550, &s);
    CHECK(s.w_gram > 0.5 && s.w_gram < 1.5, "Gram weight half-way up its ramp: %g", s.w_gram);
    dx_train_sched_at(&c, 600, &s);
    CHECK_CLOSE(s.w_gram, 2.0, 1e-7, 0, "Gram weight after the ramp");
    dx_train_sched_at(&c, 999, &s);
    CHECK_CLOSE(s.w_gram, 2.0, 1e-7, 0, "Gram weight at the end");
    CHECK(s.lr < peak && s.lr >= 1e-6, "cosine towards min_lr: %g", s.lr);
    CHECK(s.momentum > 0.999 && s.momentum <= 1.0, "EMA momentum near its end value: %g", s.momentum);
    return dx_test_summary();
}
