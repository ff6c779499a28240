/**
 * The small local data set the document pipeline looks facts up in: market notes by category and the accounts
 * of known companies. It stands for the database or API a real deployment would query.
 */

/** A market note for one category of document. */
export interface MarketNote {
  readonly sector: string
  readonly outlook: string
  readonly benchmarkGrowthPercent: number
}

/** A customer account. */
export interface Account {
  readonly company: string
  readonly tier: "enterprise" | "growth" | "starter"
  readonly owner: string
  readonly openTickets: number
}

/** The categories a document is classified into. */
export const categories = ["earnings", "acquisition", "complaint", "contract"] as const

/** One of {@link categories}. */
export type Category = (typeof categories)[number]

/** Market notes by category. */
export const market: Readonly<Record<Category, MarketNote>> = {
  earnings: {
    sector: "Wholesale distribution",
    outlook: "Demand is steady; margins are under pressure from freight costs.",
    benchmarkGrowthPercent: 4.1
  },
  acquisition: {
    sector: "Mergers and acquisitions",
    outlook: "Deal volume is recovering; regulators look closely at vertical deals.",
    benchmarkGrowthPercent: 2.5
  },
  complaint: {
    sector: "Customer service",
    outlook: "Response time is the first driver of churn in support-heavy accounts.",
    benchmarkGrowthPercent: 0
  },
  contract: {
    sector: "Enterprise procurement",
    outlook: "Multi-year contracts are lengthening; renewal terms favour buyers.",
    benchmarkGrowthPercent: 1.8
  }
}

/** Accounts by company name. */
export const accounts: ReadonlyArray<Account> = [
  { company: "Northwind Traders", tier: "enterprise", owner: "Maria Anders", openTickets: 2 },
  { company: "Contoso Pharmaceuticals", tier: "growth", owner: "Liu Wei", openTickets: 0 },
  { company: "Fabrikam Logistics", tier: "starter", owner: "Samir Haddad", openTickets: 5 }
]

/** The account of a company, matched loosely on its name. */
export const findAccount = (company: string): Account | undefined => {
  const wanted = company.toLowerCase()
  return accounts.find((account) => {
    const name = account.company.toLowerCase()
    return wanted.includes(name) || name.includes(wanted.split(/\s+/)[0] ?? wanted)
  })
}
