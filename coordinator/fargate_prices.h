/*
 * fargate_prices.h - what ECS Fargate tasks cost: a dated price table per region (Linux/x86,
 * on-demand and Spot, per vCPU-hour and per GB-hour) and the estimate of a run before it starts.
 *
 * The table (fargate_prices.c) states its date and its source, and marks each row by how sure it
 * is: prices could not be read from AWS on the machine that wrote it, so every printed estimate
 * says "check the AWS Fargate pricing page". A region not in the table has no price: the estimate
 * says so, never a guess. Spot prices change with demand; the table's are an indication.
 *
 * Errors: none; lookups return NULL for an unknown region. Ownership: the rows are static.
 * Threading: any thread.
 */
#ifndef ST_FARGATE_PRICES_H
#define ST_FARGATE_PRICES_H

#include <stdio.h>

typedef struct st_fargate_price {
    const char *region;
    double vcpu_hour, gb_hour;           /* on-demand, USD */
    double spot_vcpu_hour, spot_gb_hour; /* FARGATE_SPOT, USD; 0: not known */
    const char *confidence;              /* how the row was checked, printed beside it */
} st_fargate_price;

/* The date and the source of the table, e.g. "2026-12-02, AWS Fargate pricing page". */
extern const char st_fargate_prices_as_of[];

/* The row of region (e.g. "us-east-1"), NULL when the table has none. */
const st_fargate_price *st_fargate_price_find(const char *region);

/* USD for task_hours of tasks of vcpu vCPUs and gb GB at the given prices. */
double st_fargate_cost(double task_hours, double vcpu, double gb, double vcpu_hour,
                       double gb_hour);

/* Prints the estimate lines for task_hours of vcpu/gb tasks in region (NULL: unknown) to out,
 * indented by indent. With override (both prices > 0) one line at those prices; otherwise the
 * table's on-demand and Spot lines, or a line saying no price is known for the region. */
void st_fargate_print_estimate(FILE *out, const char *indent, const char *region,
                               double task_hours, double vcpu, double gb,
                               double price_vcpu_hour, double price_gb_hour);

#endif
