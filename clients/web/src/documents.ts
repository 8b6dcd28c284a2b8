// Every operation the app sends. The server knows them in advance (persisted-documents.json): the app sends
// their sha256 as documentId, never their text.
import { graphql } from './gql';


// A credential mutation must be the only field of its operation.
export const LogIn = graphql(`
  mutation LogIn($input: LogInInput!) {
    logIn(input: $input) { accessToken accessTokenExpiresAt member { id name role } }
  }
`);

export const RefreshSession = graphql(`
  mutation RefreshSession {
    refreshSession(input: {}) { accessToken accessTokenExpiresAt member { id name role } }
  }
`);

export const LogOut = graphql(`
  mutation LogOut {
    logOut(input: {}) { loggedOut }
  }
`);

export const Dashboard = graphql(`
  query Dashboard {
    viewer { id name role }
    practice {
      id name slug kind
      members(first: 100) { totalCount edges { node { id name role status } } }
      billing { currentBalance { amount currency } }
    }
  }
`);

export const BillingHistory = graphql(`
  query BillingHistory($clinicianIds: [ID!], $chartId: ID, $first: Int) {
    practice {
      id
      members(first: 100) { edges { node { id name role status } } }
      charts(first: 100) { edges { node { id patientName } } }
      billing {
        currentBalance(filter: { clinicianIds: $clinicianIds, chartId: $chartId }) { amount currency }
        history(filter: { clinicianIds: $clinicianIds, chartId: $chartId }, first: $first) {
          totalCount
          edges {
            node {
              id kind occurredOn description patientName
              amount { amount currency }
              clinician { id name }
            }
          }
        }
      }
    }
  }
`);

export const RecordPayment = graphql(`
  mutation RecordPayment($input: RecordPaymentInput!) {
    recordPayment(input: $input) { entry { id } balance { amount currency } }
  }
`);

export const GenerateStatement = graphql(`
  mutation GenerateStatement($input: GenerateStatementInput!) {
    generateStatement(input: $input) { statement { id number closingBalance { amount currency } pdfUrl } }
  }
`);
