/* Fargate prices and the cost estimate of a run (fargate_prices.h). */
#include "fargate_prices.h"

#include <string.h>

/*
 * Linux/x86, USD. Source: the "AWS Fargate Pricing" page (aws.amazon.com/fargate/pricing/).
 * Written 2026-12-02 without access to that page, so no row was checked against it on that date:
 * us-east-1's on-demand row is the page's long-standing figure; the other on-demand rows are the
 * page's figures as last known. Spot prices move with demand: us-east-1's is an indication, and
 * the other regions have none (0: not known).
 */
const char st_fargate_prices_as_of[] = "2026-12-02 (AWS Fargate Pricing page, Linux/x86)";

#define CHECKED    "on-demand the long-standing figure, Spot an indication; both unverified"
#define UNVERIFIED "unverified"

static const st_fargate_price prices[] = {
    {"us-east-1", 0.04048, 0.004445, 0.01334058, 0.00146489, CHECKED},
    {"us-east-2", 0.04048, 0.004445, 0, 0, UNVERIFIED},
    {"us-west-2", 0.04048, 0.004445, 0, 0, UNVERIFIED},
    {"us-west-1", 0.04656, 0.00511, 0, 0, UNVERIFIED},
    {"eu-west-1", 0.04048, 0.004445, 0, 0, UNVERIFIED},
    {"eu-west-2", 0.04656, 0.00511, 0, 0, UNVERIFIED},
    {"eu-central-1", 0.04656, 0.00511, 0, 0, UNVERIFIED},
    {"ap-northeast-1", 0.05056, 0.00553, 0, 0, UNVERIFIED},
    {"ap-southeast-1", 0.05056, 0.00553, 0, 0, UNVERIFIED},
    {"ap-southeast-2", 0.04856, 0.00532, 0, 0, UNVERIFIED},
};

const st_fargate_price *st_fargate_price_find(const char *region)
{
    for (size_t i = 0; region && i < sizeof(prices) / sizeof(prices[0]); i++) {
        if (strcmp(prices[i].region, region) == 0) {
            return &prices[i];
        }
    }
    return NULL;
}

double st_fargate_cost(double task_hours, double vcpu, double gb, double vcpu_hour,
                       double gb_hour)
{
    return task_hours * (vcpu * vcpu_hour + gb * gb_hour);
}

void st_fargate_print_estimate(FILE *out, const char *indent, const char *region,
                               double task_hours, double vcpu, double gb,
                               double price_vcpu_hour, double price_gb_hour)
{
    if (price_vcpu_hour > 0 && price_gb_hour > 0) {
        fprintf(out, "%sabout $%.6f at the given prices ($%.8g per vCPU-hour, $%.8g per GB-hour)\n",
                indent, st_fargate_cost(task_hours, vcpu, gb, price_vcpu_hour, price_gb_hour),
                price_vcpu_hour, price_gb_hour);
        return;
    }
    const st_fargate_price *p = st_fargate_price_find(region);
    if (!p) {
        fprintf(out, "%sno Fargate price is known for region %s (cost not estimated): give "
                     "--price-vcpu-hour and --price-gb-hour\n",
                indent, region ? region : "(none set)");
        return;
    }
    char spot[160];
    if (p->spot_vcpu_hour > 0 && p->spot_gb_hour > 0) {
        snprintf(spot, sizeof(spot), "about $%.6f on Spot ($%.8g, $%.8g)",
                 st_fargate_cost(task_hours, vcpu, gb, p->spot_vcpu_hour, p->spot_gb_hour),
                 p->spot_vcpu_hour, p->spot_gb_hour);
    } else {
        snprintf(spot, sizeof(spot), "no Spot price known");
    }
    fprintf(out, "%sabout $%.6f on-demand ($%.8g per vCPU-hour, $%.8g per GB-hour), %s "
                 "in %s\n",
            indent, st_fargate_cost(task_hours, vcpu, gb, p->vcpu_hour, p->gb_hour),
            p->vcpu_hour, p->gb_hour, spot, region);
    fprintf(out, "%sprices as of %s, %s: check the AWS Fargate pricing page\n", indent,
            st_fargate_prices_as_of, p->confidence);
}
