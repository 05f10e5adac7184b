/* train_sched.c - see train_sched.h. */
#include "train/train_sched.h"

#include "train/schedule.h"

void dx_train_sched_at(const dx_config *c, int64_t it, dx_ssl_sched *out) {
    const int64_t T = dx_config_total_steps(c), E = c->train.epoch_length;
    const int64_t W = (int64_t)(c->optim.warmup_epochs * E);
    dx_cosine_schedule lr = {.base = dx_config_peak_lr(c), .final = c->optim.min_lr, .start_warmup = 0,
                             .total = T, .warmup = W < T ? W : T};
    dx_cosine_schedule last = lr;
    last.zero_first = (int64_t)(c->optim.freeze_last_layer_epochs * E);
    dx_cosine_schedule wd = {.base = c->optim.wd_start, .final = c->optim.wd_end, .total = T};
    dx_cosine_schedule mom = {.base = c->teacher.momentum_start, .final = c->teacher.momentum_end, .total = T};
    const int64_t Wt = (int64_t)(c->teacher.temp_warmup_epochs * E);
    dx_cosine_schedule temp = {.base = c->teacher.temp_end, .final = c->teacher.temp_end,
                               .start_warmup = c->teacher.temp_start, .total = T, .warmup = Wt < T ? Wt : T};
    out->lr = (float)dx_cosine_schedule_at(&lr, it);
    out->last_layer_lr = (float)dx_cosine_schedule_at(&last, it);
    out->wd = (float)dx_cosine_schedule_at(&wd, it);
    out->momentum = (float)dx_cosine_schedule_at(&mom, it);
    out->teacher_temp = (float)dx_cosine_schedule_at(&temp, it);
    out->w_gram = 0.0f;
    if (c->gram.enabled) {
        /* DINOv3's gram.loss_weight_schedule: linear_warmup_cosine_decay(0, 0, w, start, ., ramp) */
        const int64_t Ws = (int64_t)(c->gram.weight_start_epochs * E), Cr = (int64_t)(c->gram.weight_ramp_epochs * E);
        dx_lwcd_schedule gw = {.start = 0, .peak = 0, .end = c->gram.weight, .warmup = Ws, .total = Ws + Cr, .cosine = Cr};
        out->w_gram = Ws + Cr > 0 ? (float)dx_lwcd_schedule_at(&gw, it) : c->gram.weight;
    }
    const int64_t Cl = (int64_t)(c->loss.local_weight_epochs * E);
    if (Cl > 0) {
        dx_lwcd_schedule lw = {.start = c->loss.local_weight_start, .peak = c->loss.local_weight_start,
                               .end = c->loss.local_weight_end, .warmup = 0, .total = Cl, .cosine = Cl};
        out->lambda_local = (float)dx_lwcd_schedule_at(&lw, it);
    } else {
        out->lambda_local = c->loss.local_weight_start;
    }
}
